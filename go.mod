module github.com/edgegw/edge

go 1.26.8

require (
	github.com/asavie/xdp v0.3.3
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/cilium/ebpf v0.4.0
	github.com/google/gopacket v1.1.19
	github.com/vishvananda/netlink v1.1.0
	github.com/vishvananda/netns v0.0.0-20191106174202-0a2b9b5464df
	golang.org/x/sys v0.49.0
)

replace github.com/asavie/xdp => ./third_party/asavie-xdp
