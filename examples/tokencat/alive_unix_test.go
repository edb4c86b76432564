//go:build unix

package main

import "syscall"

// alive reports whether a process with id pid exists.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}
