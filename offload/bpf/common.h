/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions of the sclp-ovs tc-BPF datapath (mode=ip): wire constants, the maps
 * shared with the Go manager (layouts mirrored in offload/bpf/maps.go), statistics and the
 * one's-complement checksum helpers. */
#ifndef SCLP_COMMON_H
#define SCLP_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

/* Wire constants (offload/sclp). */
#define ETH_HLEN 14
#define IP_HLEN 20
#define SCLP_HLEN 12
#define VXLAN_HLEN 8
#define SEG_HDR (ETH_HLEN + IP_HLEN + SCLP_HLEN) /* 46: headers repeated per segment */
#define ENCAP (SEG_HDR + VXLAN_HLEN)             /* 54: full encapsulation */
#define IPPROTO_SCLP 234
#define SCLP_VXLAN_PORT 4789
#define SCLP_SPORT_MIN 49152
#define MAX_MSG 65553
#define MAX_REMAINING 65535
#define VXLAN_FLAGS 0x08000000
#define ETH_P_IP_BE 0x0008 /* htons(0x0800) */

/* Datapath limits. */
#define MIN_MSS 512       /* smallest MSS the tx program accepts (MTU 544) */
#define MAX_MSS 16000     /* bpf_skb_change_tail cannot build a segment above 16,064 bytes */
#define MAX_SEGS 128      /* ceil(MAX_MSG / MIN_MSS) */
#define MAX_FRAME (MAX_MSG - VXLAN_HLEN)
#define TX_BUF_SIZE 81920 /* >= SEG_HDR + MAX_MSG + MAX_MSS + pad */
#define RX_MAX_PKT 16064  /* largest IPv4 packet the rx program copies to the ring */
#define REC_HDR 16        /* ring-buffer record header (offload/bpf/record.go) */
#define RING_SMALL_PKT 1504 /* packets up to this size are loaded straight into the ring */
#define MERGE_MAX 16000     /* largest message (VXLAN + frame) the rx program reassembles */
#define MERGE_TIMEOUT_NS 20000000ULL /* a merge slot idle this long may be evicted */

/* Ring-buffer record reasons (offload/bpf/record.go). */
#define REASON_MULTI 1
#define REASON_OOO 2
#define REASON_LARGE 3
#define REASON_FULL 4
#define REASON_MERGED 5
#define RECF_CSUM_VERIFIED 1

/* tx_port.flags */
#define TXF_FIB 1 /* resolve next hop and MACs with bpf_fib_lookup per message */

/* Per-port transmit configuration, keyed by the ifindex of the tunnel port's datapath-side
 * veth (where the tx program runs). Addresses in network byte order. */
struct tx_port {
	__u32 vni;
	__u32 local;
	__u32 peer;
	__u32 ifindex; /* underlay device */
	__u16 mss;     /* underlay MTU - 32, a multiple of 4 */
	__u8 ttl;
	__u8 tos;
	__u8 dmac[6];
	__u8 smac[6];
	__u32 flags;
};

/* Receive lookup: (outer source, VNI) -> tunnel port. */
struct rx_key {
	__u32 peer; /* network byte order */
	__u32 vni;
};

struct rx_port {
	__u32 ifindex; /* datapath-side veth of the tunnel port */
	__u32 mtu;     /* tunnel port MTU: largest inner L3 packet it takes */
	__u32 flags;   /* RXF_* */
};

/* rx_port.flags */
#define RXF_MERGE 1 /* reassemble in-order multi-segment messages that fit the port in BPF */

/* Statistics: one counter per event and drop reason (names in offload/bpf/stats.go). */
enum stat {
	ST_TX_MESSAGES,
	ST_TX_SEGMENTS,
	ST_TX_BYTES,
	ST_TX_WIRE_BYTES,
	ST_TX_CSUM_FINALIZED,
	ST_TX_FIB_LOOKUPS,
	ST_TX_DROP_NO_PORT,
	ST_TX_DROP_TOO_BIG,
	ST_TX_DROP_BAD_CONFIG,
	ST_TX_DROP_NO_NEIGH,
	ST_TX_DROP_CSUM,
	ST_TX_DROP_ERROR,
	ST_RX_SEGMENTS,
	ST_RX_BYTES,
	ST_RX_PASSED,
	ST_RX_FAST,
	ST_RX_FAST_BYTES,
	ST_RX_EXC_MULTI,
	ST_RX_EXC_LARGE,
	ST_RX_RING_FULL,
	ST_RX_DROP_SHORT,
	ST_RX_DROP_EMPTY,
	ST_RX_DROP_BAD_IP,
	ST_RX_DROP_BAD_PORT,
	ST_RX_DROP_UNKNOWN_PEER,
	ST_RX_DROP_BAD_REMAINING,
	ST_RX_DROP_BAD_CHECKSUM,
	ST_RX_DROP_BAD_VXLAN,
	ST_RX_DROP_UNKNOWN_VNI,
	ST_RX_DROP_TOO_BIG,
	ST_RX_DROP_ERROR,
	ST_RX_MERGED,
	ST_RX_MERGED_BYTES,
	ST_RX_MERGE_SEGMENTS,
	ST_RX_EXC_OOO,
	ST_RX_EXC_BUSY,
	ST_RX_EXC_MERGED_RUN,
	ST_RX_DUPLICATE,
	ST_RX_THROTTLED,
	ST_MAX,
};

struct sclp_stats {
	__u64 c[ST_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct tx_port);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rx_key);
	__type(value, struct rx_port);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rx_ports SEC(".maps");

/* Manager bookkeeping for adoption after a restart (not read by the programs): keyed like
 * tx_ports by the datapath-side veth ifindex. */
struct port_info {
	char name[16]; /* the OVS-side veth (PortSpec.Name) */
	__u32 mtu;     /* PortSpec.MTU */
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct port_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} port_meta SEC(".maps");

/* Known peers (outer source addresses, network byte order) -> number of ports using them.
 * Manager bookkeeping: the rx program tests a source against peer_stats, whose entries the
 * manager keeps for exactly these peers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sclp_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

/* Per-port and per-peer counters (offload/bpf/portstats.go). The manager creates one
 * entry per tunnel port (key: its datapath-side veth ifindex, as tx_ports) and per peer
 * (key: the outer source address, as peers), plus key 0 of each: the bucket of what no
 * entry accounts for. The programs never insert; a lookup miss counts into key 0, so the
 * entries of a map always add up to the matching host counters in stats. */
#define N_TX_DROP (ST_TX_DROP_ERROR - ST_TX_DROP_NO_PORT + 1)

struct port_counters {
	__u64 tx_messages;
	__u64 tx_segments;
	__u64 tx_bytes;
	__u64 tx_drop[N_TX_DROP]; /* by ST_TX_DROP_* - ST_TX_DROP_NO_PORT */
	__u64 rx_frames;          /* delivered by BPF (single-segment and merged) */
	__u64 rx_frame_bytes;
	__u64 rx_merged;
};

struct peer_counters {
	__u64 rx_segments;
	__u64 rx_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4097);
	__type(key, __u32);
	__type(value, struct port_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} port_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4097);
	__type(key, __u32);
	__type(value, struct peer_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} peer_stats SEC(".maps");

/* port_stats_get returns the counters of the port on ifindex, else the key-0 bucket. */
static __always_inline struct port_counters *port_stats_get(__u32 ifindex)
{
	struct port_counters *ps = bpf_map_lookup_elem(&port_stats, &ifindex);
	if (ps)
		return ps;
	__u32 zero = 0;
	return bpf_map_lookup_elem(&port_stats, &zero);
}

/* TX_DROP counts a tx drop in the host counters and, if ps is set, the port's. */
#define TX_DROP(st, ps, idx)                                              \
	do {                                                              \
		COUNT(st, idx);                                           \
		if (ps)                                                   \
			(ps)->tx_drop[(idx) - ST_TX_DROP_NO_PORT]++;      \
	} while (0)

/* Throttled peers: peer address -> expiry (bpf_ktime_get_ns, CLOCK_MONOTONIC). Userspace
 * (offload.Manager.ThrottlePeer) adds a peer whose new partial messages the reassembler is
 * refusing at its cap; until the expiry the rx program drops that peer's first segments of
 * multi-segment messages where they would go to the ring (after the checksum; never one the
 * merge slot takes) (rx_throttled). Not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} throttled SEC(".maps");

/* Exceptions for offload/fallback (records: offload/bpf/record.go). The manager sizes it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} exceptions SEC(".maps");

static __always_inline struct sclp_stats *stats_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&stats, &zero);
}

#define COUNT(st, idx) ((st)->c[(idx)]++)
#define COUNT_N(st, idx, n) ((st)->c[(idx)] += (n))

/* One's-complement helpers over "memory order" sums: 16-bit words loaded in host order
 * from network-order bytes, as csum_partial and bpf_csum_diff produce them. */
static __always_inline __u32 csum_add32(__u32 a, __u32 b)
{
	__u32 s = a + b;
	return s + (s < b);
}

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}


#endif
