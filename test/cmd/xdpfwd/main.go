// Command xdpfwd is a small AF_XDP switch for ovsxdp's integration tests:
// it opens an AF_XDP port on each named device, floods every frame to the
// other ports, removes a port whose device is deleted, and prints "ready"
// once it forwards. It runs until SIGINT or SIGTERM (or SIGKILL, which is
// what the tests use to check that the kernel detaches its XDP programs).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func main() {
	ports := flag.String("ports", "", "comma-separated devices to open AF_XDP ports on")
	frames := flag.Int("frames", 1024, "UMEM frames per socket")
	mode := flag.String("mode", "best-effort", "XDP attach mode: best-effort, native or generic")
	flag.Parse()
	if err := run(strings.Split(*ports, ","), *frames, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "xdpfwd:", err)
		os.Exit(1)
	}
}

func run(devices []string, frames int, modeName string) error {
	mode, err := vport.ParseXDPMode(modeName)
	if err != nil {
		return err
	}
	if len(devices) < 2 || devices[0] == "" {
		return fmt.Errorf("want at least two devices in -ports")
	}
	br, err := datapath.New(datapath.Config{Name: "xdpfwd"})
	if err != nil {
		return err
	}
	defer br.Close()
	for _, dev := range devices {
		p, err := vport.OpenXSK(vport.XSKConfig{Device: dev, Frames: frames, Mode: mode})
		if err != nil {
			return err
		}
		// The bridge follows the port's link and removes the port when
		// the link is deleted.
		if _, err := br.AddPort(p, 0); err != nil {
			p.Close()
			return err
		}
	}
	f, err := flow.ParseFlow("actions=flood", flow.CmdAdd)
	if err != nil {
		return err
	}
	br.Table().Add(f)
	if err := br.Start(); err != nil {
		return err
	}
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
