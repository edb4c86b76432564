//go:build !linux

package main

import "os/exec"

// dieWithParent: elsewhere compare stops its children itself, on its way out
// (and on SIGINT or SIGTERM), but not when it is killed.
func dieWithParent(*exec.Cmd) {}
