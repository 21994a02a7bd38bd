// Command sclp-ovs programs Open vSwitch tunnel ports that carry VXLAN over SCLP.
package main

import (
	"os"

	"github.com/sclp-ovs/sclp-ovs/cli"
)

func main() { os.Exit(cli.Main(os.Args)) }
