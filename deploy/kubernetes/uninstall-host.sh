#!/bin/sh
# Remove what sclp-ovs left on one host, after `kubectl delete -k deploy/kubernetes` (an agent
# stopping leaves its ports, veths, flows and pinned programs in place on purpose, so that the
# next agent adopts them without dropping traffic). Run it as root on each host, for example:
#   kubectl debug node/NODE -i --profile=sysadmin --image=debian:12-slim \
#     -- chroot /host sh -s < deploy/kubernetes/uninstall-host.sh
# It removes only what carries an sclp-ovs mark:
#   - OVS ports whose Interface has external_ids sclp-ovs:owner=sclp-ovs (mesh ports made by
#     node discovery and ports made by `sclp-ovs add-port`);
#   - veth pairs whose alias is sclp-ovs:port / sclp-ovs:peer;
#   - OpenFlow flows whose cookie has the high 32 bits 0x5c1b0ff1, on every bridge;
#   - a stale agent heartbeat in Open_vSwitch external_ids, the agent's status socket;
#   - the pins under /sys/fs/bpf/sclp-ovs (unpinning detaches the tc programs of mode=ip).
# Environment: OVS_RUNDIR (default /var/run/openvswitch), SCLP_OVS_PIN_PATH (default
# /sys/fs/bpf/sclp-ovs). It is idempotent: a second run finds nothing to do.
set -eu

rundir=${OVS_RUNDIR:-/var/run/openvswitch}
pins=${SCLP_OVS_PIN_PATH:-/sys/fs/bpf/sclp-ovs}
db="unix:$rundir/db.sock"
vsctl() { ovs-vsctl --db="$db" --timeout=10 "$@"; }

# A running agent renews its heartbeat every 2 s and removes it when it stops.
hb=$(vsctl --if-exists get Open_vSwitch . 'external_ids:"sclp-ovs:agent-heartbeat"' | tr -d '"')
if [ -n "$hb" ] && [ $(($(date +%s) - $(date -d "$hb" +%s 2>/dev/null || echo 0))) -lt 10 ]; then
	echo "uninstall-host: an sclp-ovs agent is running for $db (heartbeat $hb); delete the DaemonSet first" >&2
	exit 1
fi

for iface in $(vsctl --bare --columns=name find Interface 'external_ids:"sclp-ovs:owner"=sclp-ovs'); do
	vsctl --if-exists del-port "$iface"
	echo "removed OVS port $iface"
done

ip -o link show | awk -F': ' '/ alias sclp-ovs:(port|peer)$/ { sub(/@.*/, "", $2); print $2 }' |
	while read -r dev; do
		if ip link del "$dev" 2>/dev/null; then
			echo "removed veth $dev"
		fi
	done

for br in $(vsctl list-br); do
	OVS_RUNDIR=$rundir ovs-ofctl -O OpenFlow13 del-flows "$br" "cookie=0x5c1b0ff100000000/0xffffffff00000000"
done

vsctl remove Open_vSwitch . external_ids '"sclp-ovs:agent-heartbeat"'
rm -f "$rundir/sclp-ovs-agent.sock"
if [ -d "$pins" ]; then
	rm -rf "$pins"
	echo "removed pins $pins"
fi
echo "uninstall-host: done"
