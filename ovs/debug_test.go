package ovs

import (
	"log"
	"os"

	"github.com/go-logr/stdr"
)

func init() {
	if os.Getenv("OVS_DEBUG") != "" {
		l := stdr.New(log.New(os.Stderr, "libovsdb ", 0))
		stdr.SetVerbosity(5)
		debugLogger = &l
	}
}
