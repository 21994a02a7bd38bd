// Package pcapfile reads packet captures in the classic libpcap format (either byte order,
// microsecond or nanosecond timestamps) and in pcapng (section header, interface
// description, enhanced and simple packet blocks; other blocks are skipped), and writes the
// classic format. It uses the standard library only and is what `sclp-ovs pcap` and the
// tests that generate captures use.
package pcapfile
