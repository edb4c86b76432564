//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// killProcessGroup runs cmd in its own process group and makes cancelling it
// (timeout, shutdown) kill the whole group, so that "sh -c" does not leave
// its children running.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
