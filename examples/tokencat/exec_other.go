//go:build !unix

package main

import "os/exec"

// killProcessGroup: elsewhere only the command itself is killed.
func killProcessGroup(*exec.Cmd) {}
