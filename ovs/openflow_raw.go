package ovs

import (
	"bytes"
	"fmt"
	"strings"
)

// RawFlow is a flow in ovs-ofctl syntax, for what go-openvswitch cannot express or parse
// (goto_table, learn, meters, groups, write_metadata, registers).
type RawFlow struct {
	// Cookie holds the caller's bits outside the cookie mask (e.g. a port index); the
	// owned cookie bits are added.
	Cookie uint64
	// Text is the flow without a cookie, e.g. "table=0,priority=100,in_port=3,actions=drop".
	Text string
}

// ReplaceRawFlows is ReplaceFlows for flows in ovs-ofctl syntax: one bundle deletes every flow
// we own on bridge and adds flows, each with our cookie. Text must not contain "cookie=".
func (o *OpenFlow) ReplaceRawFlows(bridge string, flows ...RawFlow) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "delete cookie=%#x/%#x\n", o.cookie, o.mask)
	for _, f := range flows {
		if strings.Contains(f.Text, "cookie=") || strings.ContainsAny(f.Text, "\n") {
			return fmt.Errorf("replace flows on %s: %w: raw flow %q must not set a cookie or span lines", bridge, ErrInvalid, f.Text)
		}
		fmt.Fprintf(&b, "add cookie=%#x,%s\n", o.cookie|f.Cookie&^o.mask, f.Text)
	}
	out, err := o.pipe(&b, "ovs-ofctl", fmt.Sprintf("--timeout=%d", o.timeout), "--bundle", "add-flow",
		"--protocols="+strings.Join(OpenFlowProtocols, ","), bridge, "-")
	if err != nil {
		return fmt.Errorf("replace flows on %s: %w: %s", bridge, err, bytes.TrimSpace(out))
	}
	return nil
}
