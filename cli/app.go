package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"
)

// Version is the sclp-ovs version, set at link time.
var Version = "dev"

// Main runs the sclp-ovs command line and returns the process exit code: 0 on success, 1 on a
// runtime failure, 2 on a usage error.
func Main(args []string) int {
	app := &ucli.App{
		Name:  "sclp-ovs",
		Usage: "VXLAN over SCLP tunnel ports for Open vSwitch",
		Commands: []*ucli.Command{
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *ucli.Context) error {
					fmt.Fprintln(c.App.Writer, "sclp-ovs", Version)
					return nil
				},
			},
		},
	}
	if err := app.Run(args); err != nil {
		fmt.Fprintln(os.Stderr, "sclp-ovs:", err)
		return 1
	}
	return 0
}
