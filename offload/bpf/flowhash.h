/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The inner-flow hash of offload/sclp.SourcePort, byte for byte: FNV-1a 64 over the inner
 * MACs, the EtherType after up to two VLAN tags, then for IPv4 the protocol and addresses
 * (and TCP/UDP/SCTP ports unless a non-first fragment), for IPv6 the next header, addresses
 * and ports; a murmur3 finaliser; mapped into 49152..65535. offload/bpf tests check that
 * both agree on random frames. */
#ifndef SCLP_FLOWHASH_H
#define SCLP_FLOWHASH_H

#include "common.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static __always_inline __u64 fnv_byte(__u64 h, __u8 b)
{
	return (h ^ b) * FNV_PRIME;
}

static __always_inline __u64 fnv_mix(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static __always_inline int is_l4_ported(__u8 proto)
{
	return proto == 6 || proto == 17 || proto == 132;
}

/* flow_port hashes the frame b[0:len) (b points into a map value with at least 128
 * readable bytes past it). */
static __always_inline __u16 flow_port(const __u8 *b, __u32 len)
{
	__u64 h = FNV_OFFSET;

	if (len < ETH_HLEN) {
#pragma unroll
		for (int i = 0; i < ETH_HLEN - 1; i++) {
			if (i >= len)
				break;
			h = fnv_byte(h, b[i]);
		}
		return SCLP_SPORT_MIN + (__u16)(fnv_mix(h) & 0x3fff);
	}
#pragma unroll
	for (int i = 0; i < 12; i++)
		h = fnv_byte(h, b[i]);
	__u16 et = ((__u16)b[12] << 8) | b[13];
	__u32 p = ETH_HLEN;
	if ((et == 0x8100 || et == 0x88a8) && len >= p + 4) {
		et = ((__u16)b[p + 2] << 8) | b[p + 3];
		p += 4;
		if ((et == 0x8100 || et == 0x88a8) && len >= p + 4) {
			et = ((__u16)b[p + 2] << 8) | b[p + 3];
			p += 4;
		}
	}
	h = fnv_byte(h, et >> 8);
	h = fnv_byte(h, et & 0xff);
	const __u8 *ip = b + p;
	__u32 rest = len - p;
	if (et == 0x0800) {
		if (rest >= 20 && (ip[0] >> 4) == 4) {
			__u32 ihl = (ip[0] & 0x0f) * 4;
			__u8 proto = ip[9];
			h = fnv_byte(h, proto);
#pragma unroll
			for (int i = 12; i < 20; i++)
				h = fnv_byte(h, ip[i]);
			__u16 frag = (((__u16)ip[6] << 8) | ip[7]) & 0x1fff;
			if (frag == 0 && ihl >= 20 && rest >= ihl + 4 && is_l4_ported(proto)) {
				const __u8 *l4 = ip + ihl;
#pragma unroll
				for (int i = 0; i < 4; i++)
					h = fnv_byte(h, l4[i]);
			}
		}
	} else if (et == 0x86dd) {
		if (rest >= 40 && (ip[0] >> 4) == 6) {
			__u8 nh = ip[6];
			h = fnv_byte(h, nh);
#pragma unroll
			for (int i = 8; i < 40; i++)
				h = fnv_byte(h, ip[i]);
			if (is_l4_ported(nh) && rest >= 44) {
#pragma unroll
				for (int i = 40; i < 44; i++)
					h = fnv_byte(h, ip[i]);
			}
		}
	}
	return SCLP_SPORT_MIN + (__u16)(fnv_mix(h) & 0x3fff);
}

#endif
