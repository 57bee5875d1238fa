//go:build pins

// Package pins only names the modules whose files (not code) go into the images, so that
// `go mod tidy` keeps them in go.mod at the pinned versions: the kernels, the Raspberry Pi
// firmware, and gokrazy's system services (dhcp, ntp, randomd). It is never built.
package pins

import (
	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/gokrazy/cmd/dhcp"
	_ "github.com/gokrazy/gokrazy/cmd/ntp"
	_ "github.com/gokrazy/gokrazy/cmd/randomd"
	_ "github.com/gokrazy/kernel.amd64"
	_ "github.com/gokrazy/kernel.rpi"
)
