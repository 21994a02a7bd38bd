package bpf

//go:generate go tool bpf2go -cc clang-19 -target bpfel -type tx_port -type rx_key -type rx_port -type sclp_stats -type port_info -type port_counters -type peer_counters -type udp_rx_key -type udp_rx_port -type udp_counters -type udp_port_counters -type udp_local_key -type udp_tx_port Sclp datapath.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
