// Command init is PID 1 of the chatmail relay image: gokrazy's Boot (mounts, hostname,
// /perm, the update API) and then gokrazy's supervisor over the image's fixed set of
// programs.
//
// `gok` generates this program from the instance config; our image always runs the same
// programs, so it is written out once here instead. The services are gokrazy's own
// network and entropy helpers plus /user/chatmail, the launcher of our Rust appliance
// (which in turn supervises Maddy). Nothing waits for the clock: the appliance must report
// its status (and a missing configuration) even on a network without NTP.
package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"

	"github.com/gokrazy/gokrazy"
)

// buildTimestamp is set by the packer (-ldflags "-X main.buildTimestamp=…").
var buildTimestamp = "unknown"

// services are the programs init supervises, in start order.
var services = []string{
	"/gokrazy/dhcp",
	"/gokrazy/ntp",
	"/gokrazy/randomd",
	"/user/chatmail",
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lshortfile)
	fmt.Printf("gokrazy build timestamp %s (chatmail relay image)\n", buildTimestamp)
	if err := gokrazy.Boot(buildTimestamp); err != nil {
		log.Fatal(err)
	}
	if host, err := os.Hostname(); err == nil {
		fmt.Printf("hostname %q\n", host)
	}
	if model := gokrazy.Model(); model != "" {
		fmt.Printf("gokrazy device model %s\n", model)
	}
	var svcs []*gokrazy.Service
	for _, path := range services {
		if _, err := os.Stat(path); err != nil {
			log.Printf("not starting %s: %v", path, err)
			continue
		}
		svcs = append(svcs, gokrazy.NewService(exec.Command(path)))
	}
	if err := gokrazy.SuperviseServices(svcs); err != nil {
		log.Fatal(err)
	}
	select {}
}
