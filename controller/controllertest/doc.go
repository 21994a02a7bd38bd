// Package controllertest holds handwritten fakes of the controller's dependencies (Store,
// Flows, Links, Router and offload.Datapath) for unit tests of the reconciler and the CLI.
// Every fake is safe for concurrent use and records what was asked of it.
package controllertest
