package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	// List the subcommands in the order they are added (the order of a
	// session: certs, serve, send, bench, compare, then baseline, the
	// reference server of compare), not alphabetically.
	cobra.EnableCommandSorting = false
}

// helpTemplate is cobra's help layout with the usage line first, then the
// description, then subcommands and flags.
const helpTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{else if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{with (or .Long .Short)}}

{{. | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} <command> --help' for the flags of a command.{{end}}
`

// newRootCommand returns the tokencat command with its subcommands, writing
// to e's streams. Errors are printed by execute, not by cobra.
func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "tokencat <command> [flags] [arguments]",
		Short: "the command-line tool of tokenserver (token/1 over mutual TLS)",
		Long: `tokencat: the command-line tool of tokenserver (token/1 over mutual TLS).

Exit codes: 0 success, 1 runtime failure, 2 usage error.`,
		Version:                    version(),
		Args:                       knownCommand,
		SuggestionsMinimumDistance: 2,
		SilenceErrors:              true,
		SilenceUsage:               true,
		RunE: func(*cobra.Command, []string) error {
			return usageErrorf("missing command")
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetContext(e.ctx)
	root.SetHelpTemplate(helpTemplate)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{describeFlagError(cmd.Flags(), err)}
	})
	for _, c := range []*cobra.Command{
		newCertsCommand(e),
		newServeCommand(e),
		newSendCommand(e),
		newBenchCommand(e),
		newCompareCommand(e),
		newBaselineCommand(e),
	} {
		c.RunE = failuresExit1(c.RunE)
		root.AddCommand(c)
	}
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Args = knownHelpTopic
		}
	}
	return root
}

// knownCommand rejects "tokencat WORD" where WORD is no subcommand (cobra
// reaches the root command with it as an argument).
func knownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", quoteAll(s, " or "))
	}
	return &usageError{msg}
}

// knownHelpTopic rejects "tokencat help WORDS" where WORDS name no command
// (cobra's help command would print the main help and exit 0).
func knownHelpTopic(cmd *cobra.Command, args []string) error {
	if _, rest, err := cmd.Root().Find(args); err != nil || len(rest) > 0 {
		return usageErrorf("unknown help topic %s", quoteAll(args, " "))
	}
	return nil
}

// quoteAll quotes each of words with %q and joins them with sep.
func quoteAll(words []string, sep string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	return strings.Join(q, sep)
}

// execute runs root with args and returns the exit code, after printing
// a one-line error on stderr for a usage error or a failure.
func execute(e *env, root *cobra.Command, args []string) int {
	// A nil slice would make cobra read os.Args.
	root.SetArgs(append([]string{}, args...))
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		plainFlagUsages(root)
	}
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	name := cmd.CommandPath()
	if f, ok := asFailure(err); ok {
		fmt.Fprintf(e.stderr, "%s: %v\n", name, f)
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "%s: %v\nRun '%s --help' for usage.\n", name, err, name)
	return exitUsage
}

// plainFlagUsages removes, from the usage of every flag of cmd and its
// subcommands, the backticks that name the flag's value for the help
// ("`HOST:PORT` of the server" becomes "HOST:PORT of the server"). The
// shell completion shows usages as descriptions, raw: it is done for the
// completion requests only, so that the help keeps its value names.
func plainFlagUsages(cmd *cobra.Command) {
	plain := func(f *pflag.Flag) { _, f.Usage = pflag.UnquoteUsage(f) }
	cmd.Flags().VisitAll(plain)
	cmd.PersistentFlags().VisitAll(plain)
	for _, c := range cmd.Commands() {
		plainFlagUsages(c)
	}
}
