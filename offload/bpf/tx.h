/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* tx: TCX ingress of a tunnel port's datapath-side veth. Every frame sent into the tunnel
 * port becomes one SCLP message (VXLAN header + frame) cut into segments at the underlay
 * MSS and sent out of the underlay. See docs/datapath.md.
 *
 *   1. copy the frame once into a per-CPU scratch buffer, 54 bytes in (room for the first
 *      segment's headers and the VXLAN header);
 *   2. pass 1 (bpf_loop): one bpf_csum_diff per chunk; if the frame is CHECKSUM_PARTIAL,
 *      finalise its inner L4 checksum from those sums (no extra pass) and make the skb
 *      non-PARTIAL (adjust_room past csum_start) so no device rewrites SCLP bytes;
 *   3. pass 2 (bpf_loop): per segment write the 46 header bytes just in front of its chunk
 *      in the scratch buffer, change_tail to the segment length, one store_bytes of
 *      [headers|chunk], clone_redirect to the underlay; the last one is bpf_redirect. */
#ifndef SCLP_TX_H
#define SCLP_TX_H

#include "common.h"
#include "flowhash.h"

#define CHECKSUM_PARTIAL 3
#define AF_INET 2

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Load-time switch for tests only: 1 skips the checksum fix, so a test can show that the
 * trap is real (segments corrupted by a device with tx checksumming off). Never set in
 * production. */
volatile const __u32 cfg_no_csum_fix = 0;

/* The few sk_buff fields the checksum fix reads (CO-RE relocated against vmlinux). */
struct sk_buff___sclp {
	__u16 csum_start;
	__u16 csum_offset;
	__u16 mac_header;
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

struct tx_scratch {
	__u8 buf[TX_BUF_SIZE];
	__u32 sums[MAX_SEGS];
	__u32 seq;
	__u32 seeded;
};

/* One entry per possible CPU (the manager sets max_entries): 80 KB does not fit a per-CPU
 * array value (32 KB limit). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tx_scratch);
} tx_scratch SEC(".maps");

struct tx_ctx {
	struct __sk_buff *skb;
	struct tx_scratch *s;
	__u64 ip_sum;
	__u64 total;
	__u32 msg_len;
	__u32 mss;
	__u32 nseg;
	__u32 ifindex;
	__u32 err;
	__u8 hdr[SEG_HDR] __attribute__((aligned(8)));
};

/* Pass 1: the unfolded sum of chunk k (padded with zeros to a multiple of 4). */
static long tx_sum_cb(__u32 k, void *arg)
{
	struct tx_ctx *c = arg;
	struct tx_scratch *s = c->s;
	__u32 mss = c->mss;
	__u32 msg_len = c->msg_len;

	__u64 kk = k;
	if (kk >= MAX_SEGS || mss < MIN_MSS || mss > MAX_MSS || msg_len > MAX_MSG)
		return 1;
	barrier_var(mss);
	barrier_var(kk);
	__u64 off = kk * mss;
	if (off >= msg_len || off > MAX_MSG)
		return 1;
	barrier_var(off);
	__u64 n = msg_len - off;
	if (n > mss)
		n = mss;
	n = (n + 3) & ~3ull;
	if (n > MAX_MSS)
		return 1;
	barrier_var(n);
	long r = bpf_csum_diff(NULL, 0, (__be32 *)(s->buf + SEG_HDR + off), n, 0);
	if (r < 0) {
		c->err = 1;
		return 1;
	}
	__u64 idx = kk;
	barrier_var(idx);
	if (idx >= MAX_SEGS)
		return 1;
	s->sums[idx] = (__u32)r;
	c->total += (__u32)r;
	return 0;
}

/* Pass 2: build and send segment k. */
static long tx_seg_cb(__u32 k, void *arg)
{
	struct tx_ctx *c = arg;
	struct tx_scratch *s = c->s;
	__u32 mss = c->mss;
	__u32 msg_len = c->msg_len;

	__u64 kk = k;
	if (kk >= MAX_SEGS || mss < MIN_MSS || mss > MAX_MSS || msg_len > MAX_MSG)
		return 1;
	barrier_var(mss);
	barrier_var(kk);
	__u64 off = kk * mss;
	if (off >= msg_len || off > MAX_MSG)
		return 1;
	barrier_var(off);
	__u64 n = msg_len - off;
	if (n > mss)
		n = mss;
	if (n > MAX_MSS || n < 1)
		return 1;
	barrier_var(n);
	__u32 rem = msg_len - off - n;

	__u8 *h = s->buf + off;
	__builtin_memcpy(h, c->hdr, SEG_HDR);

	/* IPv4 total length and header checksum. */
	__u16 tot = bpf_htons(IP_HLEN + SCLP_HLEN + n);
	*(__u16 *)(h + ETH_HLEN + 2) = tot;
	*(__u16 *)(h + ETH_HLEN + 10) = ~csum_fold(c->ip_sum + tot);

	/* SCLP: F on the first segment, remaining, checksum over header and chunk. */
	__u8 *sh = h + ETH_HLEN + IP_HLEN;
	if (k == 0)
		sh[7] |= 1;
	*(__u16 *)(sh + 8) = bpf_htons((__u16)rem);
	__u64 idx = kk;
	barrier_var(idx);
	if (idx >= MAX_SEGS)
		return 1;
	__u64 sum = s->sums[idx];
	sum += *(__u16 *)(sh + 0) + *(__u16 *)(sh + 2) + *(__u16 *)(sh + 4) +
	       *(__u16 *)(sh + 6) + *(__u16 *)(sh + 8);
	*(__u16 *)(sh + 10) = ~csum_fold(sum);

	__u32 total = SEG_HDR + n;
	if (bpf_skb_change_tail(c->skb, total, 0)) {
		c->err = 2;
		return 1;
	}
	if (bpf_skb_store_bytes(c->skb, 0, h, total, 0)) {
		c->err = 3;
		return 1;
	}
	if (k + 1 < c->nseg) {
		if (bpf_clone_redirect(c->skb, c->ifindex, 0)) {
			c->err = 4;
			return 1;
		}
	}
	return 0;
}

/* next_hop fills the Ethernet header of the template: from bpf_fib_lookup when the port asks
 * for it, else (or when the neighbour is not resolved yet) from the MACs the manager wrote. */
static __always_inline int next_hop(struct __sk_buff *skb, struct tx_port *p, struct tx_ctx *c,
				    struct sclp_stats *st)
{
	__u8 *eth = c->hdr;

	if (p->flags & TXF_FIB) {
		struct bpf_fib_lookup fib = {};
		fib.family = AF_INET;
		fib.l4_protocol = IPPROTO_SCLP;
		fib.ipv4_src = p->local;
		fib.ipv4_dst = p->peer;
		fib.ifindex = p->ifindex;
		COUNT(st, ST_TX_FIB_LOOKUPS);
		if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT) ==
		    BPF_FIB_LKUP_RET_SUCCESS) {
			__builtin_memcpy(eth, fib.dmac, 6);
			__builtin_memcpy(eth + 6, fib.smac, 6);
			c->ifindex = fib.ifindex;
			return 0;
		}
	}
	__u16 any = 0;
#pragma unroll
	for (int i = 0; i < 6; i++)
		any |= p->dmac[i];
	if (!any)
		return -1;
	__builtin_memcpy(eth, p->dmac, 6);
	__builtin_memcpy(eth + 6, p->smac, 6);
	return 0;
}

/* build_template writes the 46 header bytes shared by every segment of the message. */
static __always_inline void build_template(struct tx_ctx *c, struct tx_port *p, __u16 sport,
					   __u32 id_word)
{
	__u8 *h = c->hdr;

	*(__u16 *)(h + 12) = ETH_P_IP_BE;
	__u8 *ip = h + ETH_HLEN;
	ip[0] = 0x45;
	ip[1] = p->tos;
	*(__u16 *)(ip + 2) = 0;
	*(__u16 *)(ip + 4) = 0;
	*(__u16 *)(ip + 6) = bpf_htons(0x4000); /* DF */
	ip[8] = p->ttl ? p->ttl : 64;
	ip[9] = IPPROTO_SCLP;
	*(__u16 *)(ip + 10) = 0;
	__builtin_memcpy(ip + 12, &p->local, 4);
	__builtin_memcpy(ip + 16, &p->peer, 4);
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		sum += *(__u16 *)(ip + i);
	c->ip_sum = sum;

	__u8 *sh = ip + IP_HLEN;
	*(__u16 *)(sh + 0) = bpf_htons(sport);
	*(__u16 *)(sh + 2) = bpf_htons(SCLP_VXLAN_PORT);
	*(__u16 *)(sh + 4) = bpf_htons(id_word >> 16);
	*(__u16 *)(sh + 6) = bpf_htons(id_word & 0xffff);
	*(__u16 *)(sh + 8) = 0;
	*(__u16 *)(sh + 10) = 0;
}

/* finalize_partial computes the inner L4 checksum of a CHECKSUM_PARTIAL frame from the chunk
 * sums (the L4 region is the whole message minus its first 8 + csum_start bytes), writes it
 * into the scratch copy and corrects the sum of the chunk holding the field. Returns the
 * frame offset of csum_start, or -1 when the layout is not one it can fix. */
static __always_inline int finalize_partial(struct tx_ctx *c, struct sk_buff___sclp *k,
					    __u32 len)
{
	struct tx_scratch *s = c->s;
	__u32 x = (__u32)k->csum_start - (__u32)k->mac_header;
	__u32 o = k->csum_offset;

	if (x < ETH_HLEN || x > 240 || (x & 1) || o > 64 || (o & 1) || x + o + 2 > len)
		return -1;

	/* Sum of every chunk = sum of the message (pass 1 accumulated it). */
	__u64 total = c->total;
	/* Sum of message bytes [0, 8 + x): the VXLAN header and the frame before csum_start. */
	__u32 hl = VXLAN_HLEN + x;
	__u32 h4 = hl & ~3u;
	if (h4 > 248)
		return -1;
	long r = bpf_csum_diff(NULL, 0, (__be32 *)(s->buf + SEG_HDR), h4, 0);
	if (r < 0)
		return -1;
	__u64 head = (__u32)r;
	if (hl & 2)
		head += *(__u16 *)(s->buf + SEG_HDR + h4);
	__u16 l4 = csum_fold(total + (__u16)~csum_fold(head));
	__u16 csum = ~l4;
	if (!csum)
		csum = 0xffff;

	__u32 fo = VXLAN_HLEN + x + o; /* message offset of the checksum field */
	if (fo > 320)
		return -1;
	__u16 *field = (__u16 *)(s->buf + SEG_HDR + fo);
	__u16 old = *field;
	*field = csum;
	__u64 kf = fo / c->mss;
	if (kf >= MAX_SEGS)
		return -1;
	barrier_var(kf);
	s->sums[kf] = csum_add32(csum_add32(s->sums[kf], csum), (__u16)~old);
	return x;
}

SEC("tcx/ingress")
int sclp_tx(struct __sk_buff *skb)
{
	struct sclp_stats *st = stats_get();
	if (!st)
		return TC_ACT_SHOT;
	__u32 key = skb->ifindex;
	struct tx_port *p = bpf_map_lookup_elem(&tx_ports, &key);
	if (!p) {
		COUNT(st, ST_TX_DROP_NO_PORT);
		return TC_ACT_SHOT;
	}
	struct port_counters *ps = port_stats_get(key);
	__u32 mss = p->mss;
	if (mss < MIN_MSS || mss > MAX_MSS || (mss & 3)) {
		TX_DROP(st, ps, ST_TX_DROP_BAD_CONFIG);
		return TC_ACT_SHOT;
	}
	__u32 len = skb->len;
	if (len < ETH_HLEN || len > MAX_FRAME) {
		TX_DROP(st, ps, ST_TX_DROP_TOO_BIG);
		return TC_ACT_SHOT;
	}
	__u32 msg_len = len + VXLAN_HLEN;
	__u32 nseg = (msg_len + mss - 1) / mss;
	if ((msg_len > mss && msg_len - mss > MAX_REMAINING) || nseg > MAX_SEGS) {
		TX_DROP(st, ps, ST_TX_DROP_TOO_BIG);
		return TC_ACT_SHOT;
	}
	__u32 cpu = bpf_get_smp_processor_id();
	struct tx_scratch *s = bpf_map_lookup_elem(&tx_scratch, &cpu);
	if (!s) {
		TX_DROP(st, ps, ST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_load_bytes(skb, 0, s->buf + ENCAP, len)) {
		TX_DROP(st, ps, ST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	/* Zero padding so the last chunk sums as a multiple of 4 bytes. */
	__u32 end = ENCAP + len;
	if (end > TX_BUF_SIZE - 4) {
		TX_DROP(st, ps, ST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	*(__u32 *)(s->buf + end) = 0;

	__u32 vni = p->vni;
	*(__u32 *)(s->buf + SEG_HDR) = bpf_htonl(VXLAN_FLAGS);
	*(__u32 *)(s->buf + SEG_HDR + 4) = bpf_htonl(vni << 8);

	if (!s->seeded) {
		s->seq = bpf_get_prandom_u32();
		s->seeded = 1;
	}
	__u32 id_word = ((cpu & 0x7f) << 25) | ((s->seq & 0xffffff) << 1);
	s->seq++;

	struct tx_ctx c = {};
	c.skb = skb;
	c.s = s;
	c.msg_len = msg_len;
	c.mss = mss;
	c.nseg = nseg;
	c.ifindex = p->ifindex;
	if (next_hop(skb, p, &c, st)) {
		TX_DROP(st, ps, ST_TX_DROP_NO_NEIGH);
		return TC_ACT_SHOT;
	}
	build_template(&c, p, flow_port(s->buf + ENCAP, len), id_word);

	bpf_loop(nseg, tx_sum_cb, &c, 0);
	if (c.err) {
		TX_DROP(st, ps, ST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}

	/* The checksum trap: segments would inherit CHECKSUM_PARTIAL with csum_start inside
	 * SCLP bytes. Finalise the inner checksum in the copy, then move skb->data past
	 * csum_start with adjust_room so __skb_postpull_rcsum drops PARTIAL to NONE. */
	struct sk_buff___sclp *kskb = bpf_cast_to_kern_ctx(skb);
	if (!cfg_no_csum_fix && BPF_CORE_READ_BITFIELD(kskb, ip_summed) == CHECKSUM_PARTIAL) {
		int x = finalize_partial(&c, kskb, len);
		if (x < 0) {
			TX_DROP(st, ps, ST_TX_DROP_CSUM);
			return TC_ACT_SHOT;
		}
		__u32 d = (__u32)x + 2;
		__u32 first = msg_len < mss ? msg_len : mss;
		if (bpf_skb_change_tail(skb, SEG_HDR + first + d, 0) ||
		    bpf_skb_adjust_room(skb, -(__s32)d, BPF_ADJ_ROOM_MAC, 0) ||
		    BPF_CORE_READ_BITFIELD(kskb, ip_summed) == CHECKSUM_PARTIAL) {
			TX_DROP(st, ps, ST_TX_DROP_CSUM);
			return TC_ACT_SHOT;
		}
		COUNT(st, ST_TX_CSUM_FINALIZED);
	}

	bpf_loop(nseg, tx_seg_cb, &c, 0);
	if (c.err) {
		TX_DROP(st, ps, ST_TX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	COUNT(st, ST_TX_MESSAGES);
	COUNT_N(st, ST_TX_SEGMENTS, nseg);
	COUNT_N(st, ST_TX_BYTES, len);
	COUNT_N(st, ST_TX_WIRE_BYTES, msg_len + nseg * SEG_HDR);
	if (ps) {
		ps->tx_messages++;
		ps->tx_segments += nseg;
		ps->tx_bytes += len;
	}
	return bpf_redirect(c.ifindex, 0);
}

#endif
