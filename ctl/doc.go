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
// or prefix`). Backend errors map to codes: ApplyConfig errors wrapping
// ErrImmutable are FAILED_PRECONDITION and its other errors
// INVALID_ARGUMENT; a data plane that did not answer (conntrack.ErrNotServed)
// is UNAVAILABLE; an ended context is CANCELLED or DEADLINE_EXCEEDED.
//
// ListFlows streams FlowBatch flows per message, honours the request's
// limit and stops the backend's dump when the client goes away. FlushFlows
// with an empty filter needs all=true. ApplyConfig takes documents up to
// MaxConfigSize.
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
// ListenUnix makes the unix socket (DefaultSocket, mode 0600 in a 0700
// directory); calls on it are allowed when the peer's uid (SO_PEERCRED) is 0
// or the server's own. ListenTLS serves TCP only with mutual TLS 1.3
// (client certificates required and verified against a CA file). Every
// call, health and reflection included, is checked by the server's
// interceptors before any handler runs; connections from any other kind of
// listener are refused at the handshake. Requests are limited to
// MaxRecvMsgSize bytes and connections to WithMaxStreams concurrent calls.
//
// # Concurrency
//
// A Server is safe for concurrent use: Serve may run for several listeners
// at once, and each call runs on its own goroutine against the Backend,
// whose methods (except ReadEvents, the broker's alone) are safe from any
// goroutine. GracefulStop and Stop may be called from any goroutine, more
// than once; after either, Serve returns nil. A Client is safe for
// concurrent use, as grpc client connections are.
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
//	srv := ctl.NewServer(backend)
//	l, err := ctl.ListenUnix("")  // DefaultSocket
//	go srv.Serve(l)
//	defer srv.GracefulStop()
//
// and in the CLI:
//
//	c, err := ctl.Dial(ctx, ctl.DialOptions{})
//	st, err := c.Status.GetStatus(ctx, &edgepb.GetStatusRequest{})
package ctl
