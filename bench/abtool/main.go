package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: abtool server|load|inject|attribute [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "load":
		err = runLoad(os.Args[2:])
	case "inject":
		err = runInject(os.Args[2:])
	case "attribute":
		err = runAttribute(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "abtool:", err)
		os.Exit(1)
	}
}
