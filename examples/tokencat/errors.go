package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError is a command line that cannot work: tokencat exits 2.
type usageError struct{ msg string }

// Error returns the message, without the command name.
func (e *usageError) Error() string { return e.msg }

// usageErrorf returns a usage error with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// failure is an error of a command that ran: tokencat exits 1. Every other
// error is a usage error, so that the command line errors found by cobra
// (unknown commands and flags, bad arguments) exit 2.
type failure struct{ err error }

// Error returns the message of the command's error.
func (f *failure) Error() string { return f.err.Error() }

// Unwrap returns the command's error.
func (f *failure) Unwrap() error { return f.err }

// failuresExit1 wraps the body of a subcommand so that the errors it returns
// are failures, except its usage errors.
func failuresExit1(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		var ue *usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &failure{err}
	}
}

// asFailure returns the failure in err's chain.
func asFailure(err error) (*failure, bool) {
	var f *failure
	ok := errors.As(err, &f)
	return f, ok
}

// describeFlagError words a flag parsing error of pflag for a command with
// flags fs.
func describeFlagError(fs *pflag.FlagSet, err error) string {
	var (
		notExist *pflag.NotExistError
		invalid  *pflag.InvalidValueError
	)
	switch {
	case errors.As(err, &notExist):
		// The wording of tokencat before cobra (and of Go's flag package).
		msg := "flag provided but not defined: -" + notExist.GetSpecifiedName()
		if group := notExist.GetSpecifiedShortnames(); len(group) > 1 {
			msg += " in -" + group
			if fs.Lookup(group) != nil {
				msg += fmt.Sprintf(" (long flags take two dashes: --%s)", group)
			}
		}
		return msg
	case errors.As(err, &invalid):
		return fmt.Sprintf("invalid value %q for flag --%s: %v", invalid.GetValue(), invalid.GetFlag().Name, errors.Unwrap(invalid))
	}
	return err.Error()
}
