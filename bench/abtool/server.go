package main

import (
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// runServer serves a small body on every path with keep-alive off: the
// response says "Connection: close" and the backend closes first.
func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "address to listen on")
	size := fs.Int("size", 512, "response body bytes")
	fs.Parse(args)
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var served atomic.Uint64
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}),
	}
	srv.SetKeepAlivesEnabled(false)
	fmt.Printf("server: listening on %s\n", *listen)
	return srv.ListenAndServe()
}
