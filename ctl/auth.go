package ctl

// Transports and authentication. The server takes connections from two
// kinds of listener and authenticates each connection before any RPC:
//
//   - ListenUnix: a unix socket, mode 0600 in a 0700 directory. The peer's
//     credentials (SO_PEERCRED) are read when it connects; a call is
//     allowed when the peer's uid is 0 or the server's own uid.
//   - ListenTLS/ListenTLSConfig: TCP, only with mutual TLS 1.3: the client must
//     present a certificate that chains to the configured client CA (which
//     must be dedicated to edge: any certificate it issued gets control),
//     and, with an allowed-identities list, has one of those identities.
//
// Connections from any other listener are refused at the handshake. The
// check of every call is done by the server's interceptors (authorize),
// which run before any handler, including grpc's health and reflection
// services.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// DefaultSocket is the unix socket the daemon listens on and the CLI
// dials when given no address.
const DefaultSocket = "/run/edge/edge.sock"

// UnixPeer is the AuthInfo of a connection on a unix socket: the peer's
// credentials as the kernel recorded them when it connected (SO_PEERCRED;
// the uid is the effective one).
type UnixPeer struct {
	credentials.CommonAuthInfo
	PID      int32
	UID, GID uint32
}

// AuthType implements credentials.AuthInfo.
func (UnixPeer) AuthType() string { return "unix-peercred" }

// peerCred reads SO_PEERCRED of a unix-socket connection.
func peerCred(c net.Conn) (UnixPeer, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return UnixPeer{}, fmt.Errorf("ctl: %T has no file descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return UnixPeer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return UnixPeer{}, err
	}
	if cerr != nil {
		return UnixPeer{}, fmt.Errorf("ctl: SO_PEERCRED: %w", cerr)
	}
	return UnixPeer{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		PID:            cred.Pid, UID: cred.Uid, GID: cred.Gid,
	}, nil
}

// serverCreds are the server's transport credentials: a TLS handshake for
// connections from ListenTLS, the peer's credentials for unix
// sockets, a refusal for anything else.
type serverCreds struct {
	// other authenticates connections of other kinds (tests: bufconn);
	// nil refuses them.
	other func(net.Conn) (credentials.AuthInfo, error)
}

var errUnknownListener = errors.New("ctl: connection refused: not from a unix socket or a mutual-TLS listener (use ListenUnix or ListenTLS)")

func (c *serverCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if tc, ok := conn.(*tlsConn); ok {
		return tc.creds.ServerHandshake(tc.Conn)
	}
	if conn.LocalAddr().Network() == "unix" {
		p, err := peerCred(conn)
		if err != nil {
			return nil, nil, err
		}
		return conn, p, nil
	}
	if c.other != nil {
		ai, err := c.other(conn)
		return conn, ai, err
	}
	return nil, nil, errUnknownListener
}

func (c *serverCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("ctl: server credentials used by a client")
}

func (c *serverCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "edge"}
}

func (c *serverCreds) Clone() credentials.TransportCredentials { cp := *c; return &cp }

func (c *serverCreds) OverrideServerName(string) error { return nil }

// authorize lets a call through when its connection is authenticated: a
// TLS 1.3 peer with a verified client certificate chain, or a unix peer
// whose uid is allowed.
func (s *Server) authorize(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return status.Error(codes.Unauthenticated, "unauthenticated connection")
	}
	switch ai := p.AuthInfo.(type) {
	case credentials.TLSInfo:
		if ai.State.HandshakeComplete && ai.State.Version >= tls.VersionTLS13 && len(ai.State.VerifiedChains) > 0 {
			return nil
		}
		return status.Error(codes.Unauthenticated, "TLS peer without a verified client certificate")
	case UnixPeer:
		if s.uidAllowed(ai.UID) {
			return nil
		}
		return status.Errorf(codes.PermissionDenied, "uid %d may not use edge's control socket (root or uid %d only)", ai.UID, s.uid)
	}
	return status.Errorf(codes.Unauthenticated, "unauthenticated connection (%s)", p.AuthInfo.AuthType())
}

func (s *Server) uidAllowed(uid uint32) bool {
	if uid == 0 || uid == s.uid {
		return true
	}
	for _, u := range s.opts.uids {
		if u == uid {
			return true
		}
	}
	return false
}

func (s *Server) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorize(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

// ListenUnix listens on a unix socket at path (DefaultSocket if empty).
// It creates the socket's directory with mode 0700 when missing, and
// refuses an existing directory that is a symlink, is not owned by the
// effective uid, or is writable by its group or others (whoever may write
// there could replace the socket). It refuses a path that is not a socket
// or where an edge already answers, and replaces a stale socket. The
// socket is bound under a temporary name with mode 0600 (the umask is
// narrowed around bind, so the file never exists with a wider mode), made
// to listen and only then renamed to path. Closing the listener removes
// the socket file.
func ListenUnix(path string) (net.Listener, error) {
	if path == "" {
		path = DefaultSocket
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ctl: socket directory: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("ctl: socket directory: %w", err)
		}
	}
	if err := checkSocketDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("ctl: %s exists and is not a socket; not removing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("ctl: %s: another edge is already serving there", path)
		}
		// Stale: replaced by the rename below.
	}
	tmp := filepath.Join(dir, "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid()))
	if len(tmp) >= len(unix.RawSockaddrUnix{}.Path) {
		return nil, fmt.Errorf("ctl: socket path %s is too long", path)
	}
	os.Remove(tmp) // a leftover of this pid
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ctl: socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // FileListener dups it
	fail := func(what string, err error) (net.Listener, error) {
		os.Remove(tmp)
		return nil, fmt.Errorf("ctl: %s %s: %w", what, path, err)
	}
	if err := bindPrivate(fd, tmp); err != nil {
		return fail("bind", err)
	}
	if fi, err := os.Lstat(tmp); err != nil {
		return fail("stat", err)
	} else if fi.Mode().Perm() != 0o600 {
		return fail("bind", fmt.Errorf("socket created with mode %v, want 0600", fi.Mode().Perm()))
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail("listen", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail("rename", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail("stat", err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("ctl: listen %s: %w", path, err)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // Close removes path, if still ours
	}
	return &unixListener{Listener: l, path: path, fi: fi}, nil
}

// umaskMu serializes ListenUnix's umask changes (the umask is the
// process's: a file another goroutine creates during bind gets the narrow
// umask too, which errs on the safe side).
var umaskMu sync.Mutex

// bindPrivate binds fd to name with the socket file created mode 0600:
// bind creates it with 0777 &^ umask, so the umask is 0177 meanwhile.
func bindPrivate(fd int, name string) error {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := unix.Umask(0o177)
	defer unix.Umask(old)
	return unix.Bind(fd, &unix.SockaddrUnix{Name: name})
}

// checkSocketDir refuses a socket directory another user could tamper
// with: a symlink, one not owned by the effective uid, or one its group or
// others may write to.
func checkSocketDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("ctl: socket directory: %w", err)
	}
	switch st, _ := fi.Sys().(*syscall.Stat_t); {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("ctl: socket directory %s is a symlink; give the real directory", dir)
	case !fi.IsDir():
		return fmt.Errorf("ctl: socket directory %s is not a directory", dir)
	case st == nil:
		return fmt.Errorf("ctl: socket directory %s: no owner information", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("ctl: socket directory %s is owned by uid %d, not by edge's uid %d", dir, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("ctl: socket directory %s has mode %04o: writable by its group or others (want 0700 or 0755)", dir, fi.Mode().Perm())
	}
	return nil
}

type unixListener struct {
	net.Listener
	path string
	fi   os.FileInfo
}

// Addr is the socket's path (the bound name was the temporary one).
func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
	return err
}

// loadTLS loads a certificate with its key, and a CA pool.
func loadTLS(certFile, keyFile, caFile string) (tls.Certificate, *x509.CertPool, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return tls.Certificate{}, nil, errors.New("mutual TLS needs a certificate, its key and a CA file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certificate %s, key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("CA %s: no PEM certificate in it", caFile)
	}
	return cert, pool, nil
}

// ServerTLSConfig loads the server's mutual-TLS configuration from PEM
// files: TLS 1.3 only, the server's certificate and key, and client
// certificates required and verified against caFile. All three are needed.
//
// Every certificate caFile has issued gets full control of edge, so caFile
// must be a CA dedicated to edge's operators, not an organisation-wide CA.
// allowed, when not empty, narrows that to the client certificates with
// one of these identities: a DNS name or URI among the certificate's
// subject alternative names, or its subject's common name (exact, case
// sensitive). Another certificate fails the handshake.
func ServerTLSConfig(certFile, keyFile, caFile string, allowed ...string) (*tls.Config, error) {
	cert, pool, err := loadTLS(certFile, keyFile, caFile)
	if err != nil {
		return nil, fmt.Errorf("ctl: server TLS: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	if len(allowed) > 0 {
		cfg.VerifyConnection = AllowIdentities(allowed...)
	}
	return cfg, nil
}

// AllowIdentities returns a tls.Config.VerifyConnection function that
// accepts a connection only when the client's verified certificate has one
// of the identities (see ServerTLSConfig). Use it with ListenTLSConfig.
func AllowIdentities(identities ...string) func(tls.ConnectionState) error {
	allowed := make(map[string]bool, len(identities))
	for _, id := range identities {
		allowed[id] = true
	}
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return errors.New("ctl: no verified client certificate")
		}
		leaf := cs.VerifiedChains[0][0]
		if certAllowed(leaf, allowed) {
			return nil
		}
		return fmt.Errorf("ctl: client certificate %q (serial %s) is not among the identities allowed to control edge",
			leaf.Subject.CommonName, leaf.SerialNumber)
	}
}

// certAllowed reports whether one of c's identities (its subject's common
// name, its DNS and URI subject alternative names) is allowed.
func certAllowed(c *x509.Certificate, allowed map[string]bool) bool {
	if c.Subject.CommonName != "" && allowed[c.Subject.CommonName] {
		return true
	}
	for _, n := range c.DNSNames {
		if allowed[n] {
			return true
		}
	}
	for _, u := range c.URIs {
		if allowed[u.String()] {
			return true
		}
	}
	return false
}

// ListenTLS listens on addr (host:port) for TCP connections with mutual
// TLS: the server's certificate and key, and the CA client certificates
// must chain to (PEM files; all three are required). allowed, when not
// empty, lists the client identities that may connect (see
// ServerTLSConfig); the CA must be dedicated to edge either way.
func ListenTLS(addr, certFile, keyFile, caFile string, allowed ...string) (net.Listener, error) {
	cfg, err := ServerTLSConfig(certFile, keyFile, caFile, allowed...)
	if err != nil {
		return nil, err
	}
	return ListenTLSConfig(addr, cfg)
}

// ListenTLSConfig listens on addr for mutual-TLS connections with cfg, which must
// require and verify client certificates (tls.RequireAndVerifyClientCert
// with ClientCAs) and have a server certificate; TLS 1.3 is enforced. The
// server does the handshake, so its interceptors see the verified chain.
func ListenTLSConfig(addr string, cfg *tls.Config) (net.Listener, error) {
	switch {
	case cfg == nil:
		return nil, errors.New("ctl: TCP only with mutual TLS: no TLS configuration")
	case cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil:
		return nil, errors.New("ctl: TCP only with mutual TLS: the TLS configuration must require and verify client certificates")
	case len(cfg.Certificates) == 0 && cfg.GetCertificate == nil:
		return nil, errors.New("ctl: TCP only with mutual TLS: no server certificate")
	}
	cfg = cfg.Clone()
	cfg.MinVersion = tls.VersionTLS13
	cfg.MaxVersion = 0
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ctl: %w", err)
	}
	return &tlsListener{Listener: l, creds: credentials.NewTLS(cfg)}, nil
}

// tlsListener marks its connections for a TLS handshake by the server.
type tlsListener struct {
	net.Listener
	creds credentials.TransportCredentials
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: c, creds: l.creds}, nil
}

type tlsConn struct {
	net.Conn
	creds credentials.TransportCredentials
}
