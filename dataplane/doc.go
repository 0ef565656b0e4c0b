// Package dataplane will be edge's packet path: AF_XDP sockets bound to NIC
// queues, one worker goroutine per queue owning its sockets and its
// conntrack shard, the XDP program that steers IP to the sockets and fails
// closed, neighbour and route tables from netlink.
//
// Status: not implemented yet (issue #3). Nothing here runs.
package dataplane
