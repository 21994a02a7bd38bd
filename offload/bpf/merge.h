/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* In-BPF reassembly (stages 1 and 2 of SCLP.md for the simple case): for ports flagged
 * RXF_MERGE (tunnel port MTU larger than one segment can carry), an in-order multi-segment
 * message whose frame fits the port MTU and MERGE_MAX is collected in a per-CPU slot and
 * delivered as ONE frame rebuilt in the last segment's skb. A BPF-built frame is never GSO,
 * hence the port MTU bound. Anything else leaves through the ring, never silently:
 *   - a segment of another message: reason 1 (the slot keeps its message);
 *   - a segment whose bytes the slot already holds (a duplicate of its first segment: same
 *     key and size; or a later segment ending at or before the slot's next byte): dropped
 *     and counted as a duplicate (rx_duplicate), never sent up, so a run the slot flushes
 *     later cannot cover a piece userspace already holds;
 *   - a first segment of the message the slot last finished (delivered, or flushed to the
 *     ring) or last handed up as busy, within MERGE_TIMEOUT_NS: a duplicate too (its bytes
 *     are already delivered or in userspace); and any segment of a message the slot
 *     delivered whole;
 *   - a gap or partial overlap in the slot's message: the held run goes out as a merged run
 *     (reason 5: synthetic SCLP header, no valid checksum) and then the segment as reason 2
 *     (in that order, so the reassembler sees the run before the piece after it);
 *   - a new first segment while the slot is busy: reason 4, unless the slot has been idle
 *     for MERGE_TIMEOUT_NS, then the held run is flushed (reason 5) and the slot reused; any
 *     other segment arriving on the CPU also flushes a slot idle that long. A throttled
 *     source's first segment that would go up as busy is dropped (rx_throttled); one the
 *     slot holds without a later segment yet yields the slot to the next first segment
 *     (dropped, rx_throttled), so a flood of first segments cannot hold the slot.
 * Segments of one message arrive on one CPU: the sender emits them back to back from one CPU,
 * and receive hashing of protocol 234 uses the outer addresses only. */
#ifndef SCLP_MERGE_H
#define SCLP_MERGE_H

#include "common.h"

#define MERGE_HDR (REC_HDR + IP_HLEN + SCLP_HLEN) /* record header | IPv4 | SCLP */

/* Idle time after which a merge slot may be evicted (load-time constant; tests raise it). */
volatile const __u64 cfg_merge_timeout_ns = MERGE_TIMEOUT_NS;

/* msg_mark remembers one message whose first segment's bytes have left the slot's hands. */
struct msg_mark {
	__u64 at; /* when (bpf_ktime_get_ns); 0: none */
	__u32 src;
	__u32 ports;
	__u32 word;
	__u32 size;
	__u32 done; /* delivered whole by BPF: every segment of it is a duplicate */
	__u32 pad;
};

struct rx_merge {
	__u8 rec[MERGE_HDR + MERGE_MAX + 16384]; /* the message bytes follow the headers */
	__u64 touched;
	__u32 active;
	__u32 src;
	__u32 ports; /* SCLP source and destination port, as on the wire */
	__u32 word;  /* SCLP id word without F, as on the wire */
	__u32 size;
	__u32 next;
	__u32 port;    /* tunnel port's datapath-side veth */
	__u32 ingress; /* underlay ifindex */
	__u32 thr;     /* taken by a throttled source's first segment, no later segment yet */
	__u32 pad;
	struct msg_mark last; /* the message the slot last finished (delivered or flushed) */
	struct msg_mark busy; /* the message whose first segment last went up as busy */
};

/* mark_set records the message (src, ports, word without F, size) in k at time now. */
static __always_inline void mark_set(struct msg_mark *k, __u32 src, __u32 ports, __u32 word,
				     __u32 size, __u32 done, __u64 now)
{
	k->at = now;
	k->src = src;
	k->ports = ports;
	k->word = word;
	k->size = size;
	k->done = done;
}

/* mark_is reports whether k holds the message (src, ports, word) and is younger than the
 * merge timeout at now. */
static __always_inline int mark_is(struct msg_mark *k, __u32 src, __u32 ports, __u32 word, __u64 now)
{
	return k->at && k->src == src && k->ports == ports && k->word == word &&
	       now - k->at < cfg_merge_timeout_ns;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rx_merge);
} rx_merge SEC(".maps");

/* merge_flush hands the held run to userspace as a merged run and frees the slot. */
static __always_inline void merge_flush(struct rx_merge *m, struct sclp_stats *st)
{
	__u32 next = m->next;
	m->active = 0;
	if (next > MERGE_MAX)
		return;
	__u32 *h = (__u32 *)m->rec;
	h[0] = REASON_MERGED;
	h[1] = IP_HLEN + SCLP_HLEN + next;
	h[2] = m->ingress;
	h[3] = 0; /* a merged run has no valid SCLP checksum */
	__u8 *ip = m->rec + REC_HDR;
	*(__u16 *)(ip + 2) = bpf_htons(IP_HLEN + SCLP_HLEN + next);
	*(__u16 *)(ip + 10) = 0;
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		sum += *(__u16 *)(ip + i);
	*(__u16 *)(ip + 10) = ~csum_fold(sum);
	__u8 *sh = ip + IP_HLEN;
	*(__u16 *)(sh + 8) = bpf_htons((__u16)(m->size - next));
	*(__u16 *)(sh + 10) = 0;
	if (bpf_ringbuf_output(&exceptions, m->rec, MERGE_HDR + next, 0)) {
		COUNT(st, ST_RX_RING_FULL);
		return;
	}
	COUNT(st, ST_RX_EXC_MERGED_RUN);
	mark_set(&m->last, m->src, m->ports, m->word, m->size, 0, bpf_ktime_get_ns());
}

static __always_inline struct rx_merge *merge_slot(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&rx_merge, &zero);
}

/* merge_first starts collecting a message (source saddr, SCLP ports and id word as on the
 * wire, F included) from its first segment (tot bytes of IPv4). */
static __always_inline int merge_first(struct __sk_buff *skb, struct sclp_stats *st,
				       struct rx_port *port, __u32 tot, __u32 size, __u32 saddr,
				       __u32 ports, __u32 word)
{
	struct rx_merge *m = merge_slot();
	if (!m) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	word &= ~bpf_htonl(1);
	__u64 now = bpf_ktime_get_ns();
	if (m->active) {
		if (m->src == saddr && m->ports == ports && m->word == word && m->size == size) {
			COUNT(st, ST_RX_DUPLICATE); /* the slot holds these bytes */
			return TC_ACT_SHOT;
		}
		if (m->thr) {
			/* A throttled source's lone first segment (a flood's, or a message whose
			 * next segment has not come) yields the slot: dropped, counted throttled. */
			m->active = 0;
			COUNT(st, ST_RX_THROTTLED);
		} else if (now - m->touched < cfg_merge_timeout_ns) {
			if (peer_throttled(saddr)) {
				COUNT(st, ST_RX_THROTTLED); /* not handed up: no busy mark */
				return TC_ACT_SHOT;
			}
			int r = to_ring(skb, st, tot, REASON_FULL);
			mark_set(&m->busy, saddr, ports, word, size, 0, now);
			return r;
		} else {
			merge_flush(m, st);
		}
	}
	if ((mark_is(&m->last, saddr, ports, word, now) && m->last.size == size) ||
	    (mark_is(&m->busy, saddr, ports, word, now) && m->busy.size == size)) {
		COUNT(st, ST_RX_DUPLICATE); /* already delivered or handed to userspace */
		return TC_ACT_SHOT;
	}
	if (tot < IP_HLEN + SCLP_HLEN + 1 || tot > IP_HLEN + SCLP_HLEN + MERGE_MAX) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	__u32 n = ((tot - 1) & 0x3fff) + 1; /* == tot; a form the verifier keeps in [1, 16384] */
	if (bpf_skb_load_bytes(skb, ETH_HLEN, m->rec + REC_HDR, n)) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	__u8 *ip = m->rec + REC_HDR;
	m->src = *(__u32 *)(ip + 12);
	m->ports = *(__u32 *)(ip + IP_HLEN);
	m->word = *(__u32 *)(ip + IP_HLEN + 4) & ~bpf_htonl(1);
	m->size = size;
	m->next = tot - IP_HLEN - SCLP_HLEN;
	m->port = port->ifindex;
	m->ingress = skb->ifindex;
	m->touched = now;
	m->thr = peer_throttled(saddr);
	m->active = 1;
	COUNT(st, ST_RX_MERGE_SEGMENTS);
	return TC_ACT_SHOT;
}

/* merge_next offers a non-first segment (s payload bytes, remaining rem) to the slot. */
static __always_inline int merge_next(struct __sk_buff *skb, struct sclp_stats *st, __u32 saddr,
				      __u32 ports, __u32 word, __u32 s, __u32 rem, __u32 tot)
{
	struct rx_merge *m = merge_slot();
	if (!m || !m->active || m->src != saddr || m->ports != ports || m->word != word) {
		if (!m)
			return to_ring(skb, st, tot, REASON_MULTI);
		/* A segment of the message the slot delivered whole is a duplicate. */
		if (m->last.done && m->last.word == word && s + rem <= m->last.size &&
		    mark_is(&m->last, saddr, ports, word, bpf_ktime_get_ns())) {
			COUNT(st, ST_RX_DUPLICATE);
			return TC_ACT_SHOT;
		}
		/* A slot left idle by a lost segment is flushed by the next segment on this CPU. */
		if (m->active && bpf_ktime_get_ns() - m->touched >= cfg_merge_timeout_ns)
			merge_flush(m, st);
		return to_ring(skb, st, tot, REASON_MULTI);
	}
	__u32 next = m->next;
	__u32 size = m->size;
	if (s + rem <= size && size - rem <= next) {
		/* Every byte of it is held: [size - s - rem, size - rem) within [0, next). */
		COUNT(st, ST_RX_DUPLICATE);
		return TC_ACT_SHOT;
	}
	if (size - (s + rem) != next || next + s > size) {
		merge_flush(m, st);
		return to_ring(skb, st, tot, REASON_OOO);
	}
	if (next > MERGE_MAX || s < 1 || s > MERGE_MAX) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	barrier_var(next);
	__u32 n = ((s - 1) & 0x3fff) + 1; /* == s */
	if (bpf_skb_load_bytes(skb, ETH_HLEN + IP_HLEN + SCLP_HLEN, m->rec + MERGE_HDR + next, n)) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	COUNT(st, ST_RX_MERGE_SEGMENTS);
	m->thr = 0;
	m->next = next + s;
	m->touched = bpf_ktime_get_ns();
	if (m->next != size)
		return TC_ACT_SHOT;

	/* Complete: rebuild the inner frame in this skb and deliver it. */
	m->active = 0;
	mark_set(&m->last, m->src, m->ports, m->word, size, 1, m->touched);
	__u32 frame = size - VXLAN_HLEN;
	if (frame < ETH_HLEN + IP_HLEN || frame > MERGE_MAX) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	__u32 n2 = ((frame - 1) & 0x3fff) + 1; /* == frame */
	if (bpf_skb_change_tail(skb, frame, 0) ||
	    bpf_skb_store_bytes(skb, 0, m->rec + MERGE_HDR + VXLAN_HLEN, n2, 0)) {
		COUNT(st, ST_RX_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	COUNT(st, ST_RX_MERGED);
	COUNT_N(st, ST_RX_MERGED_BYTES, frame);
	__u32 ifindex = m->port;
	struct port_counters *ps = port_stats_get(ifindex);
	if (ps) {
		ps->rx_frames++;
		ps->rx_frame_bytes += frame;
		ps->rx_merged++;
	}
	return bpf_redirect(ifindex, 0);
}

#endif
