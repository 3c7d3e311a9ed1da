// Command ovsxdp is the ovsxdp datapath's command-line tool.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "ovsxdp",
		Short:         "a userspace, Open vSwitch-like AF_XDP datapath",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDemoCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ovsxdp:", err)
		os.Exit(1)
	}
}
