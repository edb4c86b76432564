//go:build !unix

package readme

import "os/exec"

// canRunShell tells whether shell blocks can run here: the test ends what
// they leave running by process group, which needs unix.
const canRunShell = false

func ownProcessGroup(*exec.Cmd)  {}
func killProcessGroup(*exec.Cmd) {}
