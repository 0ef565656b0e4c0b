// Command edge will be both the edge gateway daemon (edge run --config FILE)
// and its command-line client (edge status, flows, stats, events...).
//
// Status: only the connection-tracking core exists (issue #2); the daemon
// arrives with the packet path (issue #3) and the client with the control
// plane (issue #4). Until then this command says so and exits non-zero.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "edge: the data plane and control plane are not implemented yet (issues #3 and #4);"+
		" see README.md for what exists")
	os.Exit(2)
}
