package main

import "runtime/debug"

// devVersion is the version of a tokencat built from a checkout (go build,
// go run), where the module has no version of its own.
const devVersion = "v0.1.0-dev"

// version is tokencat's version: the module version it was built at
// ("go install github.com/tokenserver/tokenserver/examples/tokencat@v0.1.0"
// gives v0.1.0), else devVersion.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return devVersion
}
