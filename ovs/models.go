package ovs

import (
	"github.com/ovn-org/libovsdb/model"
)

// Database is the OVSDB database name of Open vSwitch.
const Database = "Open_vSwitch"

// Table names.
const (
	TableOpenvSwitch = "Open_vSwitch"
	TableBridge      = "Bridge"
	TablePort        = "Port"
	TableInterface   = "Interface"
)

// OpenvSwitch is the root row of the Open_vSwitch table (the columns this project uses).
type OpenvSwitch struct {
	UUID        string            `ovsdb:"_uuid"`
	Bridges     []string          `ovsdb:"bridges"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
	OVSVersion  *string           `ovsdb:"ovs_version"`
	// NextCfg is incremented by clients that want to know when ovs-vswitchd has applied their
	// change; ovs-vswitchd copies it to CurCfg once it has.
	NextCfg int `ovsdb:"next_cfg"`
	CurCfg  int `ovsdb:"cur_cfg"`
}

// Bridge is a row of the Bridge table.
type Bridge struct {
	UUID  string   `ovsdb:"_uuid"`
	Name  string   `ovsdb:"name"`
	Ports []string `ovsdb:"ports"`
	// DatapathType is "netdev" for the userspace datapath ("" or "system" needs the kernel module).
	DatapathType string            `ovsdb:"datapath_type"`
	FailMode     *string           `ovsdb:"fail_mode"`
	ExternalIDs  map[string]string `ovsdb:"external_ids"`
	OtherConfig  map[string]string `ovsdb:"other_config"`
	Status       map[string]string `ovsdb:"status"`
}

// Port is a row of the Port table.
type Port struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Interfaces  []string          `ovsdb:"interfaces"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
	Tag         *int              `ovsdb:"tag"`
	// Protected ports never forward to other protected ports (split horizon for NORMAL).
	Protected bool `ovsdb:"protected"`
}

// Interface is a row of the Interface table.
type Interface struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Type        string            `ovsdb:"type"`
	Options     map[string]string `ovsdb:"options"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OtherConfig map[string]string `ovsdb:"other_config"`
	// Status is written by ovs-vswitchd, which replaces the whole map when it refreshes an
	// interface: keys written by others may be overwritten (prefer ExternalIDs for our state).
	Status        map[string]string `ovsdb:"status"`
	OFPort        *int              `ovsdb:"ofport"`
	OFPortRequest *int              `ovsdb:"ofport_request"`
	MTURequest    *int              `ovsdb:"mtu_request"`
	MTU           *int              `ovsdb:"mtu"`
	Error         *string           `ovsdb:"error"`
	AdminState    *string           `ovsdb:"admin_state"`
	LinkState     *string           `ovsdb:"link_state"`
	Ifindex       *int              `ovsdb:"ifindex"`
	MACInUse      *string           `ovsdb:"mac_in_use"`
}

// ClientDBModel returns the libovsdb client model of the four tables above.
func ClientDBModel() (model.ClientDBModel, error) {
	return model.NewClientDBModel(Database, map[string]model.Model{
		TableOpenvSwitch: &OpenvSwitch{},
		TableBridge:      &Bridge{},
		TablePort:        &Port{},
		TableInterface:   &Interface{},
	})
}
