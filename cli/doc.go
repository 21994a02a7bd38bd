// Package cli holds the sclp-ovs commands (urfave/cli/v2) and is the only place where the real
// implementations of the controller's dependencies are wired together.
package cli
