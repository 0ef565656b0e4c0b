// Package dataplane is edge's packet path: AF_XDP sockets bound to NIC
// queues, one worker goroutine per queue owning its sockets and its
// conntrack shard, the XDP program that steers IP to the sockets and fails
// closed, and (to come) neighbour and route tables from netlink.
//
// Status (issue #3, in progress): the XDP program exists (xdpprog.go) and is
// tested in namespaces: IP goes to the queue's AF_XDP socket, ARP, neighbour
// discovery and management addresses go to the kernel, and with no socket
// bound IP is dropped and counted (fail closed). Workers, forwarding and
// `edge run` are not written yet.
//
// Concurrency: a Program may be configured (Register, AddManagement) from any
// goroutine; the kernel serializes map updates. Attach and Detach must run on
// a thread in the interfaces' network namespace.
package dataplane
