package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill cmd's process when the process that
// started it dies, so that compare leaves no server behind even when it is
// killed itself (SIGKILL). Linux sends the signal when the starting thread
// ends; the Go runtime ends threads only for goroutines that exit locked to
// one, which compare does not do.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
