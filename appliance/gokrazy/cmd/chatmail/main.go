// Command chatmail runs the relay's Rust appliance under gokrazy's supervision.
//
// gokrazy supervises only Go programs under /gokrazy and /user (research/gokrazy.md §4),
// so this launcher replaces itself with the static Rust binary from the read-only root:
// after exec, restarts, signals, the process group and the captured output all apply to
// the appliance directly. Arguments given to the launcher are passed on after `run`.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// appliance is where the packer puts the Rust binary.
const appliance = "/usr/local/bin/chatmail-appliance"

// environment the appliance needs on gokrazy, which has no libc, no /etc/passwd and keeps
// its CA bundle at a Go-specific path.
var environment = []string{
	"SSL_CERT_FILE=/etc/ssl/ca-bundle.pem",
	"CHATMAIL_MADDY_BIN=/usr/local/bin/maddy",
}

// waitForResolver waits (at most a minute) until DHCP has written a name server into
// /etc/resolv.conf, so that the appliance starts with the network's resolver rather than
// its fallback.
func waitForResolver() {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/etc/resolv.conf")
		if strings.Contains(string(b), "nameserver") {
			return
		}
		time.Sleep(time.Second)
	}
}

// extraArgsFile holds arguments for the appliance, one per line ("#" starts a comment line),
// for setups the image cannot know about, such as a private ACME CA or update portal in a
// test network. The portal never writes it; whoever can write /perm controls the device anyway.
const extraArgsFile = "/perm/chatmail/extra-args"

// extraArgs reads extraArgsFile; a missing file means none.
func extraArgs() []string {
	b, err := os.ReadFile(extraArgsFile)
	if err != nil {
		if !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "chatmail: ignoring %s: %v\n", extraArgsFile, err)
		}
		return nil
	}
	var args []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		args = append(args, line)
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "chatmail: extra arguments from %s: %q\n", extraArgsFile, args)
	}
	return args
}

func main() {
	waitForResolver()
	// --gokrazy: grow /perm and make the device's gokrazy password at first boot;
	// --console: say what happens (and what is wrong) on the device's console too, since
	// gokrazy keeps a service's own output only in its web interface.
	args := append([]string{appliance, "run", "--gokrazy", "--console", "/dev/console"}, os.Args[1:]...)
	args = append(args, extraArgs()...)
	env := append(os.Environ(), environment...)
	if os.Getenv("RUST_LOG") == "" {
		env = append(env, "RUST_LOG=info")
	}
	err := syscall.Exec(appliance, args, env)
	// Only reached when exec failed: say so on the console, and exit non-zero so gokrazy
	// retries (a missing binary is a broken image, which the log makes plain).
	fmt.Fprintf(os.Stderr, "chatmail: cannot start %s: %v\n", appliance, err)
	os.Exit(1)
}
