//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The sclp-ovs tc-BPF datapath for mode=ip: sclp_tx (tunnel port -> SCLP segments on the
 * underlay) and sclp_rx (underlay -> validated, decapsulated frames or ring-buffer
 * exceptions). Both programs share the maps of common.h. udpfast.h adds the mode=udp fast
 * path for one-segment messages (sclp_udp_rx, sclp_udp_tx, sclp_udp_txsock), with maps of
 * its own. */
#include "common.h"
#include "tx.h"
#include "rx.h"
#include "udpfast.h"

char __license[] SEC("license") = "Dual BSD/GPL";
