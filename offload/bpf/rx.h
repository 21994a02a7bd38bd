/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* rx: TCX ingress of the underlay device. Non-SCLP traffic passes untouched. An SCLP
 * segment is validated (IPv4 header, lengths, known peer, remaining, checksum, VXLAN flags
 * and VNI on a first segment); a single-segment message is decapsulated in place (no payload
 * copy) and redirected into its tunnel port; everything else goes to userspace through the
 * exceptions ring buffer. See docs/datapath.md. */
#ifndef SCLP_RX_H
#define SCLP_RX_H

#include "common.h"

struct rx_scratch {
	__u8 buf[REC_HDR + RX_MAX_PKT + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_scratch);
} rx_scratch SEC(".maps");

#define CSUM_BLOCK(B)                                                           \
	if (n & (B)) {                                                          \
		if ((void *)(p + (B)) > end)                                    \
			return 0;                                               \
		long r = bpf_csum_diff(NULL, 0, (__be32 *)p, (B), 0);           \
		if (r < 0)                                                      \
			return 0;                                               \
		sum += (__u32)r;                                                \
		p += (B);                                                       \
	}

/* csum_ok reports whether the SCLP header and payload, n bytes at packet offset
 * ETH_HLEN + IP_HLEN of the linear data, verify (sum folds to 0xffff). It reads the packet
 * in place in power-of-two blocks, so the verifier sees constant sizes. */
static __always_inline int csum_ok(struct __sk_buff *skb, __u32 n)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *p = data + ETH_HLEN + IP_HLEN;
	__u64 sum = 0;

	if (n > RX_MAX_PKT)
		return 0;
	CSUM_BLOCK(8192)
	CSUM_BLOCK(4096)
	CSUM_BLOCK(2048)
	CSUM_BLOCK(1024)
	CSUM_BLOCK(512)
	CSUM_BLOCK(256)
	CSUM_BLOCK(128)
	CSUM_BLOCK(64)
	CSUM_BLOCK(32)
	CSUM_BLOCK(16)
	CSUM_BLOCK(8)
	CSUM_BLOCK(4)
	if (n & 2) {
		if ((void *)(p + 2) > end)
			return 0;
		sum += *(__u16 *)p;
		p += 2;
	}
	if (n & 1) {
		if ((void *)(p + 1) > end)
			return 0;
		sum += *p;
	}
	return csum_fold(sum) == 0xffff;
}

static __always_inline void count_exc(struct sclp_stats *st, __u32 reason)
{
	switch (reason) {
	case REASON_MULTI:
		COUNT(st, ST_RX_EXC_MULTI);
		break;
	case REASON_OOO:
		COUNT(st, ST_RX_EXC_OOO);
		break;
	case REASON_FULL:
		COUNT(st, ST_RX_EXC_BUSY);
		break;
	default:
		COUNT(st, ST_RX_EXC_LARGE);
	}
}

static __always_inline void put_rec_hdr(__u32 *h, struct __sk_buff *skb, __u32 n, __u32 reason)
{
	h[0] = reason;
	h[1] = n;
	h[2] = skb->ifindex;
	h[3] = RECF_CSUM_VERIFIED;
}

/* to_ring hands the IPv4 packet (n bytes from the IPv4 header) to userspace. Packets of a
 * 1500-byte underlay are loaded straight into a fixed-size ring reservation (one copy);
 * larger ones go through the per-CPU scratch and bpf_ringbuf_output (two copies), because
 * a reservation's size must be a verifier constant. */
static __always_inline int to_ring(struct __sk_buff *skb, struct sclp_stats *st, __u32 n,
				   __u32 reason)
{
	if (n >= 1 && n <= RING_SMALL_PKT) {
		barrier_var(n);
		__u8 *rec = bpf_ringbuf_reserve(&exceptions, REC_HDR + RING_SMALL_PKT, 0);
		if (!rec) {
			COUNT(st, ST_RX_RING_FULL);
			return TC_ACT_SHOT;
		}
		if (bpf_skb_load_bytes(skb, ETH_HLEN, rec + REC_HDR, n)) {
			bpf_ringbuf_discard(rec, 0);
			COUNT(st, ST_RX_DROP_ERROR);
			return TC_ACT_SHOT;
		}
		put_rec_hdr((__u32 *)rec, skb, n, reason);
		bpf_ringbuf_submit(rec, 0);
		count_exc(st, reason);
		return TC_ACT_SHOT;
	}
	__u32 zero = 0;
	struct rx_scratch *r = bpf_map_lookup_elem(&rx_scratch, &zero);
	if (!r) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	if (n < 1 || n > RX_MAX_PKT) {
		COUNT(st, ST_RX_DROP_TOO_BIG);
		return TC_ACT_SHOT;
	}
	barrier_var(n);
	if (bpf_skb_load_bytes(skb, ETH_HLEN, r->buf + REC_HDR, n)) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	put_rec_hdr((__u32 *)r->buf, skb, n, reason);
	if (bpf_ringbuf_output(&exceptions, r->buf, REC_HDR + n, 0)) {
		COUNT(st, ST_RX_RING_FULL);
		return TC_ACT_SHOT;
	}
	count_exc(st, reason);
	return TC_ACT_SHOT;
}

/* peer_throttled reports whether saddr has a running throttled-map entry. It is asked only
 * where a first segment of a multi-segment message would go to the ring (to_ring, reasons 1
 * and 4): a throttled peer's message BPF finishes itself (the merge slot) is never dropped,
 * so a flood spoofing a peer's address cannot black out the peer's in-order jumbo messages;
 * the flood still costs the checksum here, not the ring copy, the reader and the
 * reassembler. */
static __always_inline int peer_throttled(__u32 saddr)
{
	__u64 *until = bpf_map_lookup_elem(&throttled, &saddr);
	return until && bpf_ktime_get_ns() < *until;
}

#include "merge.h"

/* strip_options validates an IPv4 header of ihl words (6..15: with options) and removes the
 * options (bpf_skb_adjust_room at the network header), rewriting the header as one of 20
 * bytes. It returns 0, or the counter of the drop: a fragment or a bad header checksum is
 * bad_ip, a total length below the header or beyond the packet is short. */
static __always_inline int strip_options(struct __sk_buff *skb, __u32 ihl, __u32 len)
{
	__u8 h[60];
	__u32 n = ihl * 4;

	if (n < IP_HLEN + 4 || n > sizeof(h) || len < ETH_HLEN + n)
		return ST_RX_DROP_SHORT;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, h, n))
		return ST_RX_DROP_ERROR;
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < 60; i += 4)
		if (i < n)
			sum += *(__u16 *)(h + i) + *(__u16 *)(h + i + 2);
	__u32 tot = bpf_ntohs(*(__u16 *)(h + 2));
	if (csum_fold(sum) != 0xffff || (*(__u16 *)(h + 6) & bpf_htons(0x3fff)))
		return ST_RX_DROP_BAD_IP;
	if (tot < n || tot + ETH_HLEN > len)
		return ST_RX_DROP_SHORT;
	if (bpf_skb_adjust_room(skb, -(__s32)(n - IP_HLEN), BPF_ADJ_ROOM_NET, 0))
		return ST_RX_DROP_ERROR;
	h[0] = 0x45;
	*(__u16 *)(h + 2) = bpf_htons(tot - (n - IP_HLEN));
	*(__u16 *)(h + 10) = 0;
	sum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		sum += *(__u16 *)(h + i);
	*(__u16 *)(h + 10) = ~csum_fold(sum);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, h, IP_HLEN, BPF_F_RECOMPUTE_CSUM))
		return ST_RX_DROP_ERROR;
	return 0;
}

/* deliver decapsulates a single-segment message in place and redirects the inner frame
 * (inner bytes) into the tunnel port's datapath-side veth, whose peer pops it out. */
static __always_inline int deliver(struct __sk_buff *skb, struct sclp_stats *st, struct rx_port *port,
				   __u32 inner)
{
	__u8 ieth[ETH_HLEN];

	if (bpf_skb_load_bytes(skb, ENCAP, ieth, ETH_HLEN) ||
	    bpf_skb_adjust_room(skb, -ENCAP, BPF_ADJ_ROOM_MAC, 0) ||
	    bpf_skb_store_bytes(skb, 0, ieth, ETH_HLEN, 0)) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	if (skb->len > inner && bpf_skb_change_tail(skb, inner, 0)) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	/* Every inner byte was covered by the verified SCLP checksum. */
	bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	COUNT(st, ST_RX_FAST);
	COUNT_N(st, ST_RX_FAST_BYTES, inner);
	__u32 ifindex = port->ifindex;
	struct port_counters *ps = port_stats_get(ifindex);
	if (ps) {
		ps->rx_frames++;
		ps->rx_frame_bytes += inner;
	}
	return bpf_redirect(ifindex, 0);
}

SEC("tcx/ingress")
int sclp_rx(struct __sk_buff *skb)
{
	struct sclp_stats *st = stats_get();
	if (!st)
		return TC_ACT_OK;
	if (skb->protocol != ETH_P_IP_BE)
		goto pass;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN + IP_HLEN > end) {
		if (skb->len < ETH_HLEN + IP_HLEN ||
		    bpf_skb_pull_data(skb, ETH_HLEN + IP_HLEN))
			goto pass;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if (data + ETH_HLEN + IP_HLEN > end)
			goto pass;
	}
	__u8 *ip = data + ETH_HLEN;
	if (ip[9] != IPPROTO_SCLP)
		goto pass;
	COUNT(st, ST_RX_SEGMENTS);
	COUNT_N(st, ST_RX_BYTES, skb->len);
	/* The peer's counters double as the known-peer test (one lookup per segment): the
	 * manager creates a peer's peer_stats entry before its peers entry and deletes it after;
	 * key 0, the unattributed bucket, is no peer. */
	__u32 saddr = *(__u32 *)(ip + 12);
	struct peer_counters *pe = saddr ? bpf_map_lookup_elem(&peer_stats, &saddr) : NULL;
	int known = pe != NULL;
	if (!pe) {
		__u32 zero = 0;
		pe = bpf_map_lookup_elem(&peer_stats, &zero);
	}
	if (pe) {
		pe->rx_segments++;
		pe->rx_bytes += skb->len;
	}

	/* IPv4 with options (SCLP senders never write them; the Go parser accepts them):
	 * validated and stripped, so the packet takes the paths of one without. */
	if (ip[0] != 0x45 && (ip[0] >> 4) == 4 && (ip[0] & 0x0f) > 5) {
		int r = strip_options(skb, ip[0] & 0x0f, skb->len);
		if (r) {
			COUNT(st, r);
			return TC_ACT_SHOT;
		}
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if (data + ETH_HLEN + IP_HLEN > end) {
			COUNT(st, ST_RX_DROP_ERROR);
			return TC_ACT_SHOT;
		}
		ip = data + ETH_HLEN;
	}

	/* IPv4: no options (left), not a fragment, valid checksum. */
	__u64 isum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		isum += *(__u16 *)(ip + i);
	if (ip[0] != 0x45 || (*(__u16 *)(ip + 6) & bpf_htons(0x3fff)) ||
	    csum_fold(isum) != 0xffff) {
		COUNT(st, ST_RX_DROP_BAD_IP);
		return TC_ACT_SHOT;
	}
	__u32 tot = bpf_ntohs(*(__u16 *)(ip + 2));
	if (tot < IP_HLEN + SCLP_HLEN || tot + ETH_HLEN > skb->len) {
		COUNT(st, ST_RX_DROP_SHORT);
		return TC_ACT_SHOT;
	}
	if (tot == IP_HLEN + SCLP_HLEN) {
		COUNT(st, ST_RX_DROP_EMPTY);
		return TC_ACT_SHOT;
	}
	if (!known) {
		COUNT(st, ST_RX_DROP_UNKNOWN_PEER);
		return TC_ACT_SHOT;
	}
	if (tot > RX_MAX_PKT) {
		COUNT(st, ST_RX_DROP_TOO_BIG);
		return TC_ACT_SHOT;
	}
	if (data + ETH_HLEN + tot > end) {
		if (bpf_skb_pull_data(skb, ETH_HLEN + tot)) {
			COUNT(st, ST_RX_DROP_ERROR);
			return TC_ACT_SHOT;
		}
	}
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	__u8 *sh = data + ETH_HLEN + IP_HLEN;
	if ((void *)(sh + SCLP_HLEN) > end) {
		COUNT(st, ST_RX_DROP_SHORT);
		return TC_ACT_SHOT;
	}
	if (*(__u16 *)(sh + 2) != bpf_htons(SCLP_VXLAN_PORT)) {
		COUNT(st, ST_RX_DROP_BAD_PORT);
		return TC_ACT_SHOT;
	}
	__u32 first = sh[7] & 1;
	__u32 rem = bpf_ntohs(*(__u16 *)(sh + 8));
	__u32 s = tot - IP_HLEN - SCLP_HLEN;
	if (s + rem > MAX_MSG) {
		COUNT(st, ST_RX_DROP_BAD_REMAINING);
		return TC_ACT_SHOT;
	}
	if (!csum_ok(skb, tot - IP_HLEN)) {
		COUNT(st, ST_RX_DROP_BAD_CHECKSUM);
		return TC_ACT_SHOT;
	}
	if (!first)
		return merge_next(skb, st, saddr, *(__u32 *)sh, *(__u32 *)(sh + 4), s, rem, tot);

	/* First segment: the VXLAN header is its first 8 payload bytes. */
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	sh = data + ETH_HLEN + IP_HLEN;
	if (s < VXLAN_HLEN || (void *)(sh + SCLP_HLEN + VXLAN_HLEN) > end) {
		COUNT(st, ST_RX_DROP_SHORT);
		return TC_ACT_SHOT;
	}
	__u32 vflags = *(__u32 *)(sh + SCLP_HLEN);
	__u32 vword = bpf_ntohl(*(__u32 *)(sh + SCLP_HLEN + 4));
	if (vflags != bpf_htonl(VXLAN_FLAGS) || (vword & 0xff)) {
		COUNT(st, ST_RX_DROP_BAD_VXLAN);
		return TC_ACT_SHOT;
	}
	struct rx_key k = {.peer = saddr, .vni = vword >> 8};
	struct rx_port *port = bpf_map_lookup_elem(&rx_ports, &k);
	if (!port) {
		COUNT(st, ST_RX_DROP_UNKNOWN_VNI);
		return TC_ACT_SHOT;
	}
	if (rem) {
		__u32 size = s + rem;
		if ((port->flags & RXF_MERGE) && size <= MERGE_MAX &&
		    size - VXLAN_HLEN >= ETH_HLEN + IP_HLEN &&
		    size - VXLAN_HLEN <= port->mtu + ETH_HLEN + 4)
			return merge_first(skb, st, port, tot, size, saddr, *(__u32 *)sh,
					   *(__u32 *)(sh + 4));
		if (peer_throttled(saddr)) {
			COUNT(st, ST_RX_THROTTLED);
			return TC_ACT_SHOT;
		}
		return to_ring(skb, st, tot, REASON_MULTI);
	}
	__u32 inner = s - VXLAN_HLEN;
	if (inner < ETH_HLEN) {
		COUNT(st, ST_RX_DROP_SHORT);
		return TC_ACT_SHOT;
	}
	/* adjust_room keeps at least 20 bytes after the inner Ethernet header; a BPF-built
	 * frame is never GSO, so a frame above the port MTU goes to userspace (GSO inject). */
	if (inner < ETH_HLEN + IP_HLEN || inner > port->mtu + ETH_HLEN + 4)
		return to_ring(skb, st, tot, REASON_LARGE);
	return deliver(skb, st, port, inner);
pass:
	COUNT(st, ST_RX_PASSED);
	return TC_ACT_OK;
}

#endif
