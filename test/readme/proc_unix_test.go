//go:build unix

package readme

import (
	"os/exec"
	"syscall"
)

// canRunShell tells whether shell blocks can run here.
const canRunShell = true

// ownProcessGroup makes cmd the leader of a process group of its own, which
// the commands it starts in the background join (bash without job control).
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// killProcessGroup ends what is left of cmd's process group: the servers a
// failed block started in the background.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
