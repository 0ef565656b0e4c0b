package ctl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/edgegw/edge/ctl/edgepb"
)

// DialOptions say where the daemon is. With Addr empty the client uses the
// unix socket Socket (DefaultSocket if empty); with Addr set it uses TCP
// with mutual TLS, and CertFile, KeyFile and CAFile must name the client's
// certificate and key and the CA of the server's certificate (PEM).
type DialOptions struct {
	Socket string // unix socket path
	Addr   string // host:port, for TCP with mutual TLS

	CertFile, KeyFile, CAFile string
	// ServerName is the name the server's certificate must have (default:
	// the host of Addr).
	ServerName string
	// Timeout bounds the check that the daemon answers (default 5 s).
	Timeout time.Duration
}

// Client is a connection to edge with a client for each service.
type Client struct {
	conn   *grpc.ClientConn
	Status edgepb.StatusServiceClient
	Config edgepb.ConfigServiceClient
	Flows  edgepb.FlowServiceClient
	Events edgepb.EventServiceClient
	Stats  edgepb.StatsServiceClient
	NAT    edgepb.NATServiceClient
	Dests  edgepb.DestinationServiceClient
	Health healthpb.HealthClient
}

// Conn is the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Invoke and NewStream make a Client a grpc.ClientConnInterface, so
// edgepb.NewXxxClient(c) works as with the connection itself.
func (c *Client) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.conn.Invoke(ctx, method, args, reply, opts...)
}

// NewStream: see Invoke.
func (c *Client) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.conn.NewStream(ctx, desc, method, opts...)
}

var _ grpc.ClientConnInterface = (*Client)(nil)

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Dial connects to edge and checks, with a health check bounded by
// o.Timeout, that it answers, so that the first real call does not fail in
// an obscure way. The errors say what is wrong: "edge is not running (no
// socket at /run/edge/edge.sock)", "cannot reach edge at ADDR: connection
// refused", a TLS failure, or the server's refusal.
func Dial(ctx context.Context, o DialOptions) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	var (
		target string
		creds  credentials.TransportCredentials
		where  string
		local  bool // where is a unix socket path (absolute or not)
		opts   []grpc.DialOption
	)
	if o.Addr == "" {
		path := o.Socket
		if path == "" {
			path = DefaultSocket
		}
		where = path
		local = true
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("edge is not running (no socket at %s)", path)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("cannot use edge's socket %s: permission denied (run as root)", path)
		case err != nil:
			return nil, fmt.Errorf("cannot use edge's socket: %w", err)
		case fi.Mode()&os.ModeSocket == 0:
			return nil, fmt.Errorf("%s is not a socket (is edge's socket path right?)", path)
		}
		target = "passthrough:///unix"
		creds = insecure.NewCredentials() // the server authenticates the peer's uid
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}), grpc.WithAuthority("localhost"))
	} else {
		where = o.Addr
		host, _, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return nil, fmt.Errorf("edge address %q: %v (want host:port)", o.Addr, err)
		}
		cert, pool, err := loadTLS(o.CertFile, o.KeyFile, o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot reach edge at %s: %w", o.Addr, err)
		}
		name := o.ServerName
		if name == "" {
			name = host
		}
		creds = credentials.NewTLS(&tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			ServerName:   name,
		})
		target = "passthrough:///" + o.Addr
	}
	opts = append(opts, grpc.WithTransportCredentials(creds))
	c, err := dial(ctx, target, where, o.Timeout, opts...)
	switch {
	case err == nil:
	case local:
		err = socketErr(where, err)
	default:
		err = tlsHint(err)
	}
	return c, err
}

// tlsHint explains a TCP connection the server closed right after the TLS
// handshake. In TLS 1.3 the client's handshake ends before the server has
// checked the client's certificate, so a refused certificate often shows
// as a broken pipe or a reset instead of the server's alert.
func tlsHint(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "certificate") || strings.Contains(msg, "handshake") {
		return err
	}
	for _, s := range []string{"broken pipe", "connection reset", "EOF"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w (the server closed the connection after the TLS handshake: "+
				"it did not accept the client certificate, or its identity is not allowed)", err)
		}
	}
	return err
}

// refusedErr is dial's error when the peer refused the connection.
type refusedErr struct{ where string }

func (e *refusedErr) Error() string {
	return "cannot reach edge at " + e.where + ": connection refused"
}

// socketErr rewords a refused connection on a unix socket.
func socketErr(path string, err error) error {
	var r *refusedErr
	if errors.As(err, &r) {
		return fmt.Errorf("edge is not running (socket %s refuses connections)", path)
	}
	return err
}

// dial connects to target and makes the up-front health check.
func dial(ctx context.Context, target, where string, timeout time.Duration, opts ...grpc.DialOption) (*Client, error) {
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot reach edge at %s: %w", where, err)
	}
	c := &Client{
		conn:   conn,
		Status: edgepb.NewStatusServiceClient(conn),
		Config: edgepb.NewConfigServiceClient(conn),
		Flows:  edgepb.NewFlowServiceClient(conn),
		Events: edgepb.NewEventServiceClient(conn),
		Stats:  edgepb.NewStatsServiceClient(conn),
		NAT:    edgepb.NewNATServiceClient(conn),
		Dests:  edgepb.NewDestinationServiceClient(conn),
		Health: healthpb.NewHealthClient(conn),
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := c.Health.Check(hctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.Status != healthpb.HealthCheckResponse_SERVING {
		err = fmt.Errorf("edge at %s is %s", where, strings.ToLower(resp.Status.String()))
	} else if err != nil {
		err = reachErr(where, err)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// reachErr words a failed first call.
func reachErr(where string, err error) error {
	st := status.Convert(err)
	msg := st.Message()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return &refusedErr{where} // on a unix socket, reworded by Dial
	case st.Code() == codes.PermissionDenied || st.Code() == codes.Unauthenticated:
		return fmt.Errorf("edge at %s refused: %s", where, msg)
	case st.Code() == codes.DeadlineExceeded:
		return fmt.Errorf("cannot reach edge at %s: no answer in time", where)
	}
	// grpc words transport failures as
	// `connection error: desc = "transport: ...: <cause>"`; keep the cause.
	msg = strings.Trim(strings.TrimPrefix(msg, "connection error: desc = "), `"`)
	if i := strings.LastIndex(msg, "transport: "); i >= 0 {
		msg = msg[i+len("transport: "):]
	}
	return fmt.Errorf("cannot reach edge at %s: %s", where, msg)
}
