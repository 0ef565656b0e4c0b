// Package ctl is edge's control plane: the gRPC API of ctl/edgepb
// (edge.proto: StatusService, ConfigService, FlowService, EventService,
// StatsService, plus grpc health and reflection) served over a Backend,
// the client the CLI dials it with, and the transports and their
// authentication.
//
// # Layers
//
// The Backend interface (backend.go) is the data plane seen in plain Go
// values; nothing behind it knows grpc or protobuf. The daemon serves a
// *dataplane.Engine through EngineBackend, the tests serve a fake. Server
// (server.go) implements the services over a Backend, turning protobuf into
// plain Go types at its edge (convert.go): every request field is validated
// there and a bad one is an INVALID_ARGUMENT status whose message starts
// with the field's path (`filter.address: "10.0.0.0/33" is not an address
// or prefix`). Input the server would silently ignore is refused the same
// way (an event filter's flow.state or flow.zone). Backend errors map to
// codes: ApplyConfig errors wrapping ErrImmutable are FAILED_PRECONDITION,
// errors wrapping ErrInternal (a valid document the data plane failed to
// put in force) INTERNAL, and its other errors INVALID_ARGUMENT; a data
// plane that did not answer (conntrack.ErrNotServed: a worker that took no
// chunk of a request within conntrack.ServeTimeout, 5 s) and a backend that
// is closing (ErrStopping) are UNAVAILABLE; an ended context is CANCELLED
// or DEADLINE_EXCEEDED.
//
// ListFlows streams FlowBatch flows per message, honours the request's
// limit and stops the backend's dump when the client goes away; a client
// that reads slowly holds up only its own dump (the shard is not locked
// while a chunk is sent). With encoding "packed" (packed.go) it sends
// PackedFlowBatch flows per message as fixed-size records with a names
// table per message instead of Flow messages: no allocation per flow on
// either side, some six times cheaper end to end (BenchmarkListFlows).
// OpenFlowRecords validates a batch and FlowRecords.Record decodes it;
// FlowRecord.PB gives the very Flow message the default encoding sends,
// which is how `edge flows` prints it. FlushFlows with an empty filter
// needs all=true.
// GetStats asks the workers for SNAT destinations only when the request
// does, returns the max_destinations busiest (1000 by default), busiest
// first, with their total, and, when the workers do not answer, the
// counters all the same with a warning.
//
// # Configuration
//
// ApplyConfig takes documents up to MaxConfigSize, validates them whole and
// puts them in force live (EngineBackend). The daemon's backend is made
// WithSavePath(the --config file): a document applied for real is then
// written to that file atomically (temporary file, fsync, rename, fsync of
// the directory; the file's mode kept) and ApplyConfigResponse.saved_to
// names it. The running configuration is therefore the one `edge run
// --config FILE` starts with next time. If the file cannot be written the
// apply still stands (it is not an error and is not rolled back):
// saved_to is empty, save_error says why, and the daemon logs it; the
// CLI must warn that a restart would bring back the old file. A dry run
// saves nothing.
//
// # Events
//
// One broker (broker.go) is the only caller of Backend.ReadEvents. It polls
// every 25 ms (WithEventPoll) with a reusable buffer and copies the events
// each subscriber's filter matches into that subscriber's bounded queue
// (WithEventQueue). A subscriber whose queue is full loses events, counted
// and reported in the lost field of its next SubscribeResponse; the broker
// never waits for a subscriber, and a subscriber never slows the data plane.
// With no subscriber the broker still drains the backend and discards, so a
// new subscriber gets no stale events.
//
// # Transports and authentication
//
// ListenUnix makes the unix socket (DefaultSocket, mode 0600, set through
// the umask at bind, in a 0700 directory; an existing directory that is a
// symlink, belongs to another uid or is writable by group or others is
// refused); calls on it are allowed when the peer's uid (SO_PEERCRED) is 0
// or the server's own. ListenTLS serves TCP only with mutual TLS 1.3
// (client certificates required and verified against a CA file). Every
// certificate that CA issued gets full control of edge: the CA must be
// dedicated to edge's operators, and ListenTLS's allowed identities (a
// certificate's DNS or URI subject alternative name, or its common name)
// narrow it further. Every call, health and reflection included, is
// checked by the server's interceptors before any handler runs;
// connections from any other kind of listener are refused at the
// handshake. Requests are limited to MaxRecvMsgSize bytes, connections to
// WithMaxStreams concurrent calls and the server to WithMaxSubscribers
// event subscriptions (32; one more is RESOURCE_EXHAUSTED).
//
// # Concurrency
//
// A Server is safe for concurrent use: Serve may run for several listeners
// at once, and each call runs on its own goroutine against the Backend,
// whose methods (except ReadEvents, the broker's alone) are safe from any
// goroutine. GracefulStop and Stop may be called from any goroutine, more
// than once; after either, Serve returns nil. Both return only when every
// handler has returned, so the daemon stops in this order: Server
// (GracefulStop or Stop), then EngineBackend.Close (which waits for any call
// still in progress and refuses later ones with ErrStopping), then the
// engine. A Client is safe for concurrent use, as grpc client connections
// are.
//
// # Times
//
// The data plane's clock is monotonic. Flow and event times are converted
// to wall-clock times with the backend's Epoch, taken per request: the wall
// clock now minus the data plane's clock, so a wall-clock step (NTP) after
// start does not skew them. Status's start time is the wall clock at start.
//
// # Zero values
//
// The zero Server and Client are not usable: make them with NewServer and
// Dial. The zero DialOptions dials DefaultSocket; TCP, on either side,
// never runs without a certificate, its key and a CA file (mutual TLS). The
// zero FlowFilter, EventFilter and requests are valid: they select every
// flow or event (except FlushFlows, which then needs all=true).
//
// Usage, in the daemon:
//
//	backend := ctl.NewEngineBackend(e, doc, version, log.Printf, ctl.WithSavePath(configFile))
//	defer backend.Close()         // runs second
//	srv := ctl.NewServer(backend)
//	defer srv.GracefulStop()      // runs first
//	l, err := ctl.ListenUnix("")  // DefaultSocket
//	go srv.Serve(l)
//
// and in the CLI:
//
//	c, err := ctl.Dial(ctx, ctl.DialOptions{})
//	st, err := c.Status.GetStatus(ctx, &edgepb.GetStatusRequest{})
package ctl
