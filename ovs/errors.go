package ovs

import "errors"

// Sentinel errors. Functions wrap them with context; test with errors.Is.
var (
	// ErrNotConnected: the OVSDB connection is down (and, with reconnect, did not come back
	// before the context ended).
	ErrNotConnected = errors.New("not connected to ovsdb-server")
	// ErrNoBridge: the named bridge does not exist.
	ErrNoBridge = errors.New("no such bridge")
	// ErrNoPort: the named port does not exist (or is not on the named bridge).
	ErrNoPort = errors.New("no such port")
	// ErrNoInterface: the named interface does not exist.
	ErrNoInterface = errors.New("no such interface")
	// ErrPortExists: a port of that name exists on another bridge, or its Interface row does
	// not match the request (another type).
	ErrPortExists = errors.New("port exists elsewhere")
	// ErrTransaction: ovsdb-server rejected a transaction (constraint violation, ...).
	ErrTransaction = errors.New("ovsdb transaction failed")
	// ErrInvalid: an argument is unusable (empty name, bad cookie, ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrNoVswitchd: ovs-vswitchd did not apply a change in time (is it running?).
	ErrNoVswitchd = errors.New("ovs-vswitchd did not apply the change")
)
