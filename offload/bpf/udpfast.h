/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The mode=udp fast path for one-segment messages (offload/udp, docs/udp-mode.md).
 *
 * sclp_udp_rx runs at the TCX ingress of the underlay of mode=udp ports. It takes an IPv4
 * UDP datagram whose (source, destination, destination port, VNI) is a configured tunnel
 * port (udp_rx_ports) and whose SCLP header says first segment, remaining 0 (the whole
 * message in one datagram), verifies its UDP checksum (or relies on the kernel having done
 * so: CHECKSUM_UNNECESSARY, or CHECKSUM_PARTIAL of a locally generated skb, as the UDP
 * stack itself does), finishes the inner TCP/UDP checksum, strips outer IP + UDP + SCLP +
 * VXLAN and redirects the inner frame to the egress of the tunnel port's datapath-side
 * veth: where offload/fallback's Injector writes it. Everything else continues untouched
 * (TC_ACT_UNSPEC: the next TCX program, then the stack and the UDP socket): GSO (GRO-merged)
 * skbs, multi-segment messages, fragments, IP options, unknown (peer, VNI), a datagram
 * without UDP checksum, and frames this program cannot finish (VLAN, IPv6 extension headers,
 * first IPv4 fragments, SCTP). A datagram with a bad UDP checksum is dropped and counted.
 *
 * sclp_udp_tx (TCX ingress of a tunnel port's datapath-side veth) sends the frames that fit
 * one segment as one-segment messages itself, and sclp_udp_txsock, the filter of the port's
 * transmit packet sockets, skips exactly those (both decide with uf_tx_port); see there.
 *
 * They use only their own, unpinned maps: every mode=udp datapath loads its own copy. */
#ifndef SCLP_UDPFAST_H
#define SCLP_UDPFAST_H

#include "common.h"

#define UDP_HLEN 8
#define UF_OUTER (ETH_HLEN + IP_HLEN + UDP_HLEN)    /* 42: the SCLP header */
#define UF_ENCAP (UF_OUTER + SCLP_HLEN + VXLAN_HLEN) /* 62: the inner frame */
#define UF_MAX_PKT 16000 /* largest IPv4 datagram the rx program takes */
#define UF_CHECKSUM_PARTIAL 3

/* (peer, local, VNI, destination port) -> tunnel port. Addresses in network byte order,
 * the port in host order. */
struct udp_rx_key {
	__u32 peer;
	__u32 local;
	__u32 vni;
	__u16 port;
	__u16 pad;
};

struct udp_rx_port {
	__u32 ifindex; /* datapath-side veth of the tunnel port */
	__u32 mtu;     /* tunnel port MTU */
	__u32 flags;   /* UF_ALL_FRAMES */
};

/* Flags of udp_rx_port and udp_tx_port. By default the fast path carries only frames whose
 * order relative to the rest of their flow does not matter (uf_order_safe): the other frames
 * of a flow take the userspace path (multi-segment messages, GSO frames) and would be
 * overtaken. UF_ALL_FRAMES takes every frame that fits one segment, for ports whose traffic
 * tolerates that. */
#define UF_ALL_FRAMES 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct udp_rx_key);
	__type(value, struct udp_rx_port);
} udp_rx_ports SEC(".maps");

/* Counters (offload/udp fastpath_linux.go mirrors the order). */
enum udp_stat {
	UST_RX_FRAMES,        /* one-segment messages delivered by BPF */
	UST_RX_BYTES,         /* their inner frame bytes */
	UST_RX_CSUM_CHECKED,  /* UDP checksums verified by the program */
	UST_RX_CSUM_TRUSTED,  /* UDP checksums the kernel had verified (or a local skb) */
	UST_RX_PASS_GSO,      /* GRO-merged skbs passed to the socket */
	UST_RX_PASS_MULTI,    /* segments of multi-segment messages passed to the socket */
	UST_RX_PASS_NO_PORT,  /* datagrams to a configured address/port, unknown (peer, VNI) */
	UST_RX_PASS_NO_CSUM,  /* datagrams without UDP checksum passed to the socket */
	UST_RX_PASS_OTHER,    /* anything else odd passed to the socket */
	UST_RX_DROP_CSUM,     /* bad UDP checksum: dropped */
	UST_RX_DROP_ERROR,    /* a helper failed after the packet was changed: dropped */
	UST_TX_FRAMES,        /* frames encapsulated and sent as one-segment messages */
	UST_TX_BYTES,         /* their frame bytes */
	UST_TX_DROP_CSUM,     /* CHECKSUM_PARTIAL frames with a layout the program cannot sum */
	UST_TX_DROP_ERROR,    /* a helper failed: dropped */
	UST_RX_PASS_ORDER,    /* frames that must keep their order in their flow: to the socket */
	UST_MAX,
};

struct udp_counters {
	__u64 c[UST_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct udp_counters);
} udp_stats SEC(".maps");

/* Per tunnel port (key: the datapath-side veth ifindex) fast-path counters; the Go side
 * creates the entries, the programs never insert. */
struct udp_port_counters {
	__u64 rx_frames;
	__u64 rx_bytes;
	__u64 tx_frames;
	__u64 tx_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct udp_port_counters);
} udp_port_stats SEC(".maps");

/* Local (address, port) pairs of configured ports: only their datagrams are counted when
 * they do not match a tunnel port. Value unused. */
struct udp_local_key {
	__u32 addr;
	__u16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct udp_local_key);
	__type(value, __u32);
} udp_locals SEC(".maps");

struct sk_buff___udpfast {
	__u8 ip_summed : 2;
	__u16 csum_start;
	__u16 mac_header;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Scratch: the UDP header and payload of the datagram being taken (one copy, so the
 * checksums are two bpf_csum_diff calls whatever the skb's layout), and room behind it so
 * that a sum may read up to 3 bytes past its end. */
#define UF_SCRATCH (UF_MAX_PKT + 512)

struct uf_scratch {
	__u8 buf[UF_SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct uf_scratch);
} udp_scratch SEC(".maps");

/* Scratch offsets: the UDP header is at 0, the inner frame at UF_INNER. */
#define UF_INNER (UF_ENCAP - ETH_HLEN - IP_HLEN) /* 28 */

/* uf_sum adds the memory-order sum of scratch bytes [off, off+n) to *sum; -1 when out of
 * bounds. The bytes past off+n are not summed (the last 1-3 are added one by one). */
static __always_inline int uf_sum(struct uf_scratch *s, __u32 off, __u32 n, __u64 *sum)
{
	if (off > 256 || n > UF_MAX_PKT)
		return -1;
	__u32 n4 = n & ~3u;
	if (n4) {
		barrier_var(n4);
		if (n4 > UF_MAX_PKT)
			return -1;
		long r = bpf_csum_diff(NULL, 0, (__be32 *)(s->buf + off), n4, 0);
		if (r < 0)
			return -1;
		*sum += (__u32)r;
	}
	__u32 t = off + n4;
	if (t > UF_MAX_PKT + 256)
		return -1;
	if (n & 2) {
		*sum += *(__u16 *)(s->buf + t);
		t += 2;
	}
	if (t > UF_MAX_PKT + 256)
		return -1;
	if (n & 1)
		*sum += s->buf[t];
	return 0;
}

/* Results of uf_inner_csum. */
#define UF_INNER_OK 0   /* nothing to finish */
#define UF_INNER_PASS 1 /* a frame the program cannot finish: leave it to userspace */
#define UF_INNER_FIX 2  /* *fix holds the checksum to write at *at (packet offset) */

/* uf_inner_csum checks the inner TCP or UDP checksum of the frame at scratch offset
 * UF_INNER (inner bytes long): a sender reading a CHECKSUM_PARTIAL frame from its tunnel
 * port sends the field holding only the pseudo-header sum (docs/architecture.md, "Inner
 * checksums"), which the userspace path re-seeds for NEEDS_CSUM injection. A frame the BPF
 * path delivers must carry a correct checksum, or a forwarding OVS would pass the wrong one
 * on; it is then marked CHECKSUM_UNNECESSARY, as injection's NEEDS_CSUM spares the receiver
 * the verification. */
/* uf_order_safe reports whether an inner IP packet may overtake earlier packets of its flow,
 * i.e. may take the fast path while the flow's other packets take the userspace path (a
 * message of several segments is reassembled in userspace; a GSO frame is segmented there):
 * a TCP segment without payload and without SYN, FIN or RST (an ACK: TCP takes reordered
 * ACKs as it takes late ones), and ICMP/ICMPv6. TCP with payload, UDP (whose applications
 * may send GSO and single datagrams on one flow) and other protocols (SCTP, ESP, GRE: they
 * may have order or checksum needs of their own; SCTP's CRC32c is not an Internet checksum
 * the transmit program could account for) are not:
 * overtaking them puts them out of order at the receiver (measured in review: the receiving
 * VM's TCPOFOQueue grew by thousands with them on the fast path). ip points at the IP header
 * with UF_CLASS_LEN readable bytes (zero past the packet); an IPv6 extension header is not
 * looked through (not safe). */
#define UF_CLASS_LEN (60 + 14)

static __always_inline int uf_order_safe(const __u8 *ip)
{
	__u32 l4, tot;
	__u8 proto;
	if ((ip[0] >> 4) == 4) {
		l4 = (ip[0] & 0x0f) * 4;
		proto = ip[9];
		if (proto == 1)
			return 1;
		if (proto != 6 || l4 < IP_HLEN || (bpf_ntohs(*(__u16 *)(ip + 6)) & 0x3fff))
			return 0;
		tot = bpf_ntohs(*(__u16 *)(ip + 2));
	} else if ((ip[0] >> 4) == 6) {
		proto = ip[6];
		if (proto == 58 || proto == 59)
			return 1;
		if (proto != 6)
			return 0;
		l4 = 40;
		tot = 40 + bpf_ntohs(*(__u16 *)(ip + 4));
	} else {
		return 0;
	}
	const __u8 *th = ip + (l4 & 0x3c);
	__u32 doff = (th[12] >> 4) * 4;
	return doff >= 20 && tot == l4 + doff && !(th[13] & 0x07); /* FIN, SYN, RST */
}

static __always_inline int uf_inner_csum(struct uf_scratch *s, __u32 inner, __u16 *fix, __u32 *at)
{
	__u8 *f = s->buf + UF_INNER;
	__u16 et = *(__u16 *)(f + 12);
	__u8 *ip = f + ETH_HLEN;
	__u64 sum = 0;
	__u32 l4off, l4len;
	__u8 proto;
	int v4 = et == bpf_htons(0x0800);

	if (v4) {
		__u32 ihl = (ip[0] & 0x0f) * 4;
		__u32 tot = bpf_ntohs(*(__u16 *)(ip + 2));
		__u16 frag = bpf_ntohs(*(__u16 *)(ip + 6));
		proto = ip[9];
		if (inner < ETH_HLEN + IP_HLEN || (ip[0] >> 4) != 4 || ihl < IP_HLEN || tot < ihl ||
		    ETH_HLEN + tot > inner)
			return UF_INNER_PASS;
		if (proto != 6 && proto != 17)
			return proto == 132 ? UF_INNER_PASS : UF_INNER_OK;
		if (frag & 0x1fff)
			return UF_INNER_OK; /* a later fragment: no L4 header */
		if (frag & 0x2000)
			return UF_INNER_PASS; /* the checksum covers other fragments too */
		l4off = UF_INNER + ETH_HLEN + ihl;
		l4len = tot - ihl;
		sum += *(__u16 *)(ip + 12) + *(__u16 *)(ip + 14) + *(__u16 *)(ip + 16) +
		       *(__u16 *)(ip + 18);
	} else if (et == bpf_htons(0x86dd)) {
		__u32 plen = bpf_ntohs(*(__u16 *)(ip + 4));
		proto = ip[6];
		if (inner < ETH_HLEN + 40 || (ip[0] >> 4) != 6 || ETH_HLEN + 40 + plen > inner)
			return UF_INNER_PASS;
		if (proto != 6 && proto != 17)
			return (proto == 58 || proto == 59) ? UF_INNER_OK : UF_INNER_PASS;
		l4off = UF_INNER + ETH_HLEN + 40;
		l4len = plen;
#pragma unroll
		for (int i = 8; i < 40; i += 2)
			sum += *(__u16 *)(ip + i);
	} else if (et == bpf_htons(0x8100) || et == bpf_htons(0x88a8)) {
		return UF_INNER_PASS;
	} else {
		return UF_INNER_OK; /* ARP and other non-IP frames: no L4 checksum */
	}
	__u32 fo = proto == 6 ? 16 : 6;
	if (l4len < fo + 2 || l4len > UF_MAX_PKT || l4off > 200)
		return UF_INNER_PASS;
	__u16 old = *(__u16 *)(s->buf + l4off + fo);
	if (proto == 17 && v4 && old == 0)
		return UF_INNER_OK; /* IPv4 UDP without checksum */
	sum += bpf_htons((__u16)proto) + bpf_htons((__u16)l4len);
	if (uf_sum(s, l4off, l4len, &sum))
		return UF_INNER_PASS;
	if (csum_fold(sum) == 0xffff)
		return UF_INNER_OK;
	__u16 c = ~csum_fold(sum + (__u16)~old);
	if (c == 0 && proto == 17)
		c = 0xffff;
	*fix = c;
	*at = ETH_HLEN + IP_HLEN + l4off + fo;
	return UF_INNER_FIX;
}

static __always_inline struct udp_counters *uf_stats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&udp_stats, &zero);
}

/* uf_pass_local counts a datagram to a configured local address and port that the program
 * leaves to the socket; other traffic is not counted. */
static __always_inline int uf_pass_local(struct udp_counters *st, __u32 daddr, __u16 dport, int idx)
{
	struct udp_local_key lk = {.addr = daddr, .port = dport};
	if (bpf_map_lookup_elem(&udp_locals, &lk))
		COUNT(st, idx);
	return TC_ACT_UNSPEC;
}

SEC("tcx/ingress")
int sclp_udp_rx(struct __sk_buff *skb)
{
	if (skb->protocol != ETH_P_IP_BE || skb->len < UF_ENCAP + ETH_HLEN)
		return TC_ACT_UNSPEC;
	struct udp_counters *st = uf_stats();
	if (!st)
		return TC_ACT_UNSPEC;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	if (data + UF_ENCAP > end) {
		if (bpf_skb_pull_data(skb, UF_ENCAP))
			return TC_ACT_UNSPEC;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if (data + UF_ENCAP > end)
			return TC_ACT_UNSPEC;
	}
	__u8 *ip = data + ETH_HLEN;
	if (ip[9] != 17)
		return TC_ACT_UNSPEC;
	__u8 *udp = ip + IP_HLEN;
	__u8 *sh = udp + UDP_HLEN;
	__u32 saddr = *(__u32 *)(ip + 12), daddr = *(__u32 *)(ip + 16);
	__u16 dport = bpf_ntohs(*(__u16 *)(udp + 2));
	if (ip[0] != 0x45 || (*(__u16 *)(ip + 6) & bpf_htons(0x3fff)))
		return uf_pass_local(st, daddr, dport, UST_RX_PASS_OTHER);
	struct udp_rx_key k = {.peer = saddr, .local = daddr, .port = dport,
			       .vni = bpf_ntohl(*(__u32 *)(sh + SCLP_HLEN + 4)) >> 8};
	struct udp_rx_port *port = bpf_map_lookup_elem(&udp_rx_ports, &k);
	if (!port)
		return uf_pass_local(st, daddr, dport, UST_RX_PASS_NO_PORT);
	/* A GRO-merged skb (several datagrams of one flow) cannot be split here. */
	if (skb->gso_segs > 1 || skb->gso_size) {
		COUNT(st, UST_RX_PASS_GSO);
		return TC_ACT_UNSPEC;
	}
	if (!(sh[7] & 1) || *(__u16 *)(sh + 8)) {
		COUNT(st, UST_RX_PASS_MULTI);
		return TC_ACT_UNSPEC;
	}
	__u32 tot = bpf_ntohs(*(__u16 *)(ip + 2));
	__u32 ulen = bpf_ntohs(*(__u16 *)(udp + 4));
	if (*(__u16 *)(sh + 2) != bpf_htons(SCLP_VXLAN_PORT) ||
	    *(__u32 *)(sh + SCLP_HLEN) != bpf_htonl(VXLAN_FLAGS) || (sh[SCLP_HLEN + 7]) ||
	    ulen != tot - IP_HLEN || tot < UF_ENCAP - ETH_HLEN || tot > UF_MAX_PKT ||
	    tot + ETH_HLEN > skb->len) {
		COUNT(st, UST_RX_PASS_OTHER);
		return TC_ACT_UNSPEC;
	}
	__u32 inner = tot - (UF_ENCAP - ETH_HLEN);
	/* adjust_room keeps at least 20 bytes after the Ethernet header; a BPF-built frame is
	 * never GSO, so it must fit the tunnel port. */
	if (inner < ETH_HLEN + IP_HLEN || inner > port->mtu + ETH_HLEN + 4) {
		COUNT(st, UST_RX_PASS_OTHER);
		return TC_ACT_UNSPEC;
	}
	__u16 ucsum = *(__u16 *)(udp + 6);

	/* The UDP checksum. A zero one (none) is never taken, even when GRO marked the skb
	 * CHECKSUM_UNNECESSARY for it (it does: zero is valid UDP over IPv4). */
	if (!ucsum) {
		COUNT(st, UST_RX_PASS_NO_CSUM);
		return TC_ACT_UNSPEC;
	}
	int trusted = bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0;
	if (!trusted) {
		struct sk_buff___udpfast *kskb = bpf_cast_to_kern_ctx(skb);
		trusted = BPF_CORE_READ_BITFIELD(kskb, ip_summed) == UF_CHECKSUM_PARTIAL;
		/* A local CHECKSUM_PARTIAL skb whose checksum start is in the headers removed
		 * below (a UDP socket's own, unfinished checksum) would keep a csum_start before
		 * the new frame: a later checksum helper (a forwarding VM) would fail on it. */
		if (trusted && (__u32)kskb->csum_start - (__u32)kskb->mac_header < UF_ENCAP) {
			COUNT(st, UST_RX_PASS_OTHER);
			return TC_ACT_UNSPEC;
		}
	}

	__u32 zero = 0;
	struct uf_scratch *sc = bpf_map_lookup_elem(&udp_scratch, &zero);
	if (!sc || ulen < 1 || ulen > UF_MAX_PKT) {
		COUNT(st, UST_RX_PASS_OTHER);
		return TC_ACT_UNSPEC;
	}
	/* The verifier loses ulen's bounds; the mask keeps the value (1..UF_MAX_PKT). */
	__u32 cn = ((ulen - 1) & 0x3fff) + 1;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + IP_HLEN, sc->buf, cn)) {
		COUNT(st, UST_RX_PASS_OTHER);
		return TC_ACT_UNSPEC;
	}
	if (trusted) {
		COUNT(st, UST_RX_CSUM_TRUSTED);
	} else {
		__u64 sum = (__u64)(saddr & 0xffff) + (saddr >> 16) + (daddr & 0xffff) +
			    (daddr >> 16) + bpf_htons(17) + bpf_htons((__u16)ulen);
		if (uf_sum(sc, 0, ulen, &sum)) {
			COUNT(st, UST_RX_PASS_OTHER);
			return TC_ACT_UNSPEC;
		}
		if (csum_fold(sum) != 0xffff) {
			COUNT(st, UST_RX_DROP_CSUM);
			return TC_ACT_SHOT;
		}
		COUNT(st, UST_RX_CSUM_CHECKED);
	}

	__u16 fix = 0;
	__u32 at = 0;
	int r = uf_inner_csum(sc, inner, &fix, &at);
	if (r == UF_INNER_PASS) {
		COUNT(st, UST_RX_PASS_OTHER);
		return TC_ACT_UNSPEC;
	}
	/* uf_inner_csum checked the inner IP lengths against the frame. */
	__u16 iet = *(__u16 *)(sc->buf + UF_INNER + 12);
	if (!(port->flags & UF_ALL_FRAMES) && (iet == bpf_htons(0x0800) || iet == bpf_htons(0x86dd)) &&
	    !uf_order_safe(sc->buf + UF_INNER + ETH_HLEN)) {
		COUNT(st, UST_RX_PASS_ORDER);
		return TC_ACT_UNSPEC;
	}
	/* BPF_F_RECOMPUTE_CSUM keeps a CHECKSUM_COMPLETE skb's csum right (the pop below
	 * subtracts the removed headers from it too: bpf_skb_generic_pop). */
	if (r == UF_INNER_FIX && bpf_skb_store_bytes(skb, at, &fix, 2, BPF_F_RECOMPUTE_CSUM)) {
		COUNT(st, UST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	__u8 ieth[ETH_HLEN];
	if (bpf_skb_load_bytes(skb, UF_ENCAP, ieth, ETH_HLEN) ||
	    bpf_skb_adjust_room(skb, -UF_ENCAP, BPF_ADJ_ROOM_MAC, 0) ||
	    bpf_skb_store_bytes(skb, 0, ieth, ETH_HLEN, 0)) {
		COUNT(st, UST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	if (skb->len > inner && bpf_skb_change_tail(skb, inner, 0)) {
		COUNT(st, UST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	/* The frame's checksums are right (the outer UDP checksum covered every byte, the inner
	 * L4 one was finished above): CHECKSUM_UNNECESSARY at level 0, whatever the outer
	 * skb's state was. */
	bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);
	bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	COUNT(st, UST_RX_FRAMES);
	COUNT_N(st, UST_RX_BYTES, inner);
	__u32 ifindex = port->ifindex;
	struct udp_port_counters *ps = bpf_map_lookup_elem(&udp_port_stats, &ifindex);
	if (ps) {
		ps->rx_frames++;
		ps->rx_bytes += inner;
	}
	return bpf_redirect(ifindex, 0);
}


/* Transmit: per tunnel port, keyed by the ifindex of its datapath-side veth (where the
 * transmit packet sockets read and sclp_udp_tx runs). The Go side writes an entry only once
 * it knows the next hop's MAC; without an entry everything takes the packet socket. */
struct udp_tx_port {
	__u32 local; /* network byte order */
	__u32 peer;
	__u32 vni;
	__u32 ifindex;   /* underlay */
	__u32 max_frame; /* largest frame (Ethernet header included) taken: underlay MTU - 48 */
	__u16 port;      /* UDP destination port, host order */
	__u8 dmac[6];
	__u8 smac[6];
	__u8 ttl;
	__u8 flags; /* UF_ALL_FRAMES */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct udp_tx_port);
} udp_tx_ports SEC(".maps");

struct uf_tx_scratch {
	__u8 buf[UF_SCRATCH];
	__u32 seq;
	__u32 seeded;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct uf_tx_scratch);
} udp_tx_scratch SEC(".maps");

/* uf_tx_port is THE decision which frames the transmit fast path takes, shared by the tc
 * program (sclp_udp_tx) and the transmit packet sockets' filter (sclp_udp_txsock), so the two
 * agree by construction: a non-GSO, untagged IPv4 frame of at most max_frame bytes on a port
 * with an entry, that may overtake its flow (uf_order_safe) unless the port has
 * UF_ALL_FRAMES. The packet sockets see frames before tc ingress; a frame the filter refuses
 * is one the tc program sends. */
static __always_inline struct udp_tx_port *uf_tx_port(struct __sk_buff *skb)
{
	__u32 k = skb->ifindex;
	struct udp_tx_port *p = bpf_map_lookup_elem(&udp_tx_ports, &k);
	if (!p || skb->len > p->max_frame || skb->len < ETH_HLEN + IP_HLEN || skb->gso_size ||
	    skb->protocol != ETH_P_IP_BE || skb->vlan_present)
		return NULL;
	if (p->flags & UF_ALL_FRAMES) {
		/* SCTP's CHECKSUM_PARTIAL is a CRC32c (csum_not_inet), which the outer UDP
		 * checksum cannot be computed around: left to the packet socket. */
		__u8 proto = 0;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 9, &proto, 1) || proto == 132)
			return NULL;
		return p;
	}
	/* Only frames that may overtake their flow's frames on the socket path. */
	__u8 b[IP_HLEN + 64] = {};
	__u32 n = skb->len - ETH_HLEN; /* >= IP_HLEN: checked above */
	if (n > UF_CLASS_LEN)
		n = UF_CLASS_LEN;
	/* The mask keeps the value (IP_HLEN..UF_CLASS_LEN) and gives the verifier its bounds. */
	n = ((n - IP_HLEN) & 0x3f) + IP_HLEN;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, b, n) || !uf_order_safe(b))
		return NULL;
	return p;
}

/* The transmit packet sockets' filter: 0 (not for this socket) for what sclp_udp_tx sends. */
SEC("socket")
int sclp_udp_txsock(struct __sk_buff *skb)
{
	return uf_tx_port(skb) ? 0 : -1;
}

struct sk_buff___uftx {
	__u16 csum_start;
	__u16 csum_offset;
	__u16 mac_header;
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

#include "flowhash.h"

/* sclp_udp_tx (TCX ingress of a tunnel port's datapath-side veth) encapsulates the frames
 * uf_tx_port takes as one-segment messages: outer IPv4 (DF) + UDP (source port = the
 * inner-flow hash of offload/sclp.SourcePort, destination = the port's) + SCLP (F, remaining
 * 0, id from a per-CPU counter, checksum 0 as mode=udp sends it) + VXLAN, in front of the
 * frame (bpf_skb_adjust_room), with the UDP checksum computed, and redirects it to the
 * underlay's egress. A CHECKSUM_PARTIAL frame stays PARTIAL (its csum_start still points at
 * the inner L4 header): the UDP checksum is computed as if that inner checksum were already
 * finished (local checksum offload: the finished L4 region sums to the complement of the
 * seeded field), so it is right whether a device finishes the inner checksum or a receiver
 * does. */
SEC("tcx/ingress")
int sclp_udp_tx(struct __sk_buff *skb)
{
	struct udp_tx_port *p = uf_tx_port(skb);
	if (!p)
		return TC_ACT_UNSPEC;
	struct udp_counters *st = uf_stats();
	__u32 zero = 0;
	struct uf_tx_scratch *s = bpf_map_lookup_elem(&udp_tx_scratch, &zero);
	if (!st || !s)
		return TC_ACT_SHOT;
	__u32 len = skb->len;
	if (len < ETH_HLEN + IP_HLEN || len > UF_MAX_PKT) {
		COUNT(st, UST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	__u32 n = ((len - 1) & 0x3fff) + 1;
	if (bpf_skb_load_bytes(skb, 0, s->buf, n)) {
		COUNT(st, UST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	__u16 sport = flow_port(s->buf, len);

	/* The sum of the frame as it will be once any pending inner checksum is finished. */
	__u64 fsum = 0;
	struct sk_buff___uftx *k = bpf_cast_to_kern_ctx(skb);
	if (BPF_CORE_READ_BITFIELD(k, ip_summed) == UF_CHECKSUM_PARTIAL) {
		__u32 x = (__u32)k->csum_start - (__u32)k->mac_header;
		__u32 o = k->csum_offset;
		if (x < ETH_HLEN || x > 256 || (x & 1) || o > 64 || (o & 1) || x + o + 2 > len) {
			COUNT(st, UST_TX_DROP_CSUM);
			return TC_ACT_SHOT;
		}
		__u16 seed = *(__u16 *)(s->buf + x + o);
		if (uf_sum((struct uf_scratch *)s, 0, x, &fsum)) {
			COUNT(st, UST_TX_DROP_CSUM);
			return TC_ACT_SHOT;
		}
		fsum += (__u16)~seed;
	} else if (uf_sum((struct uf_scratch *)s, 0, len, &fsum)) {
		COUNT(st, UST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}

	if (!s->seeded) {
		s->seq = bpf_get_prandom_u32();
		s->seeded = 1;
	}
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 id_word = ((cpu & 0x7f) << 25) | ((s->seq & 0xffffff) << 1) | 1;
	s->seq++;

	__u8 h[UF_ENCAP + ETH_HLEN] __attribute__((aligned(8)));
	__builtin_memcpy(h, p->dmac, 6);
	__builtin_memcpy(h + 6, p->smac, 6);
	*(__u16 *)(h + 12) = ETH_P_IP_BE;
	__u8 *ip = h + ETH_HLEN;
	__u32 tot = IP_HLEN + UDP_HLEN + SCLP_HLEN + VXLAN_HLEN + len;
	ip[0] = 0x45;
	ip[1] = 0;
	*(__u16 *)(ip + 2) = bpf_htons(tot);
	*(__u16 *)(ip + 4) = 0;
	*(__u16 *)(ip + 6) = bpf_htons(0x4000); /* DF */
	ip[8] = p->ttl ? p->ttl : 64;
	ip[9] = 17;
	*(__u16 *)(ip + 10) = 0;
	__builtin_memcpy(ip + 12, &p->local, 4);
	__builtin_memcpy(ip + 16, &p->peer, 4);
	__u64 isum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		isum += *(__u16 *)(ip + i);
	*(__u16 *)(ip + 10) = ~csum_fold(isum);
	__u8 *udp = ip + IP_HLEN;
	__u32 ulen = tot - IP_HLEN;
	*(__u16 *)(udp + 0) = bpf_htons(sport);
	*(__u16 *)(udp + 2) = bpf_htons(p->port);
	*(__u16 *)(udp + 4) = bpf_htons(ulen);
	*(__u16 *)(udp + 6) = 0;
	__u8 *sh = udp + UDP_HLEN;
	*(__u16 *)(sh + 0) = bpf_htons(sport);
	*(__u16 *)(sh + 2) = bpf_htons(SCLP_VXLAN_PORT);
	/* 16-bit stores: the SCLP header starts at an offset of 2 mod 4 on the stack. */
	*(__u16 *)(sh + 4) = bpf_htons(id_word >> 16);
	*(__u16 *)(sh + 6) = bpf_htons(id_word & 0xffff);
	*(__u16 *)(sh + 8) = 0;  /* remaining */
	*(__u16 *)(sh + 10) = 0; /* checksum: sent as zero in UDP */
	*(__u16 *)(sh + SCLP_HLEN) = bpf_htons(VXLAN_FLAGS >> 16);
	*(__u16 *)(sh + SCLP_HLEN + 2) = 0;
	*(__u16 *)(sh + SCLP_HLEN + 4) = bpf_htons((p->vni << 8) >> 16);
	*(__u16 *)(sh + SCLP_HLEN + 6) = bpf_htons((p->vni << 8) & 0xffff);
	__builtin_memcpy(h + UF_ENCAP, s->buf, ETH_HLEN);

	/* UDP checksum: pseudo-header, UDP + SCLP + VXLAN headers, the frame. */
	__u64 usum = fsum + *(__u16 *)(ip + 12) + *(__u16 *)(ip + 14) + *(__u16 *)(ip + 16) +
		     *(__u16 *)(ip + 18) + bpf_htons(17) + bpf_htons((__u16)ulen);
#pragma unroll
	for (int i = 0; i < UDP_HLEN + SCLP_HLEN + VXLAN_HLEN; i += 2)
		usum += *(__u16 *)(udp + i);
	__u16 c = ~csum_fold(usum);
	*(__u16 *)(udp + 6) = c ? c : 0xffff;

	if (bpf_skb_adjust_room(skb, UF_ENCAP, BPF_ADJ_ROOM_MAC, 0) ||
	    bpf_skb_store_bytes(skb, 0, h, UF_ENCAP + ETH_HLEN, 0)) {
		COUNT(st, UST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	COUNT(st, UST_TX_FRAMES);
	COUNT_N(st, UST_TX_BYTES, len);
	__u32 key = skb->ifindex;
	struct udp_port_counters *ps = bpf_map_lookup_elem(&udp_port_stats, &key);
	if (ps) {
		ps->tx_frames++;
		ps->tx_bytes += len;
	}
	return bpf_redirect(p->ifindex, 0);
}

#endif
