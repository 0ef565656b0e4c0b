package ctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/edgegw/edge/ctl/edgepb"
)

// testPKI is a CA with a server and a client certificate, and a second CA
// with a client certificate of its own, as PEM files in a temp directory.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	otherClientCert, otherClientKey                  string // same CA, CN "other-client"
	otherCA, otherCert, otherKey                     string
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func newTestCA(t *testing.T, dir, name string) (testCA, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return testCA{cert, key}, file
}

func (ca testCA) issue(t *testing.T, dir, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestPKI(t *testing.T) testPKI {
	dir := t.TempDir()
	var p testPKI
	ca, caFile := newTestCA(t, dir, "ca")
	p.ca = caFile
	p.serverCert, p.serverKey = ca.issue(t, dir, "server", true)
	p.clientCert, p.clientKey = ca.issue(t, dir, "client", false)
	p.otherClientCert, p.otherClientKey = ca.issue(t, dir, "other-client", false)
	other, otherFile := newTestCA(t, dir, "other-ca")
	p.otherCA = otherFile
	p.otherCert, p.otherKey = other.issue(t, dir, "intruder", false)
	return p
}

// serveTCP serves fb on a mutual-TLS listener on localhost.
func serveTCP(t *testing.T, p testPKI) (addr string) {
	t.Helper()
	l, err := ListenTLS("127.0.0.1:0", p.serverCert, p.serverKey, p.ca)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(newFake())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func TestMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	addr := serveTCP(t, p)
	ctx := ctxT(t)

	c, err := Dial(ctx, DialOptions{Addr: addr, CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.ca})
	if err != nil {
		t.Fatalf("valid client: %v", err)
	}
	defer c.Close()
	if r, err := c.Status.GetStatus(ctx, &edgepb.GetStatusRequest{}); err != nil || r.Version == "" {
		t.Fatalf("valid client: %v, %v", r, err)
	}
	c2, err := Dial(ctx, DialOptions{Addr: "localhost:" + addr[strings.LastIndex(addr, ":")+1:],
		CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.ca})
	if err != nil {
		t.Fatalf("valid client by name: %v", err)
	}
	c2.Close()

	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(p.ca)
	roots.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := tls.LoadX509KeyPair(p.otherCert, p.otherKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no client certificate":      {RootCAs: roots, ServerName: "localhost"},
		"certificate of another CA":  {RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{otherCert}},
		"TLS 1.2 only":               {RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{clientCert}, MaxVersion: tls.VersionTLS12},
		"server not trusted (no CA)": {ServerName: "localhost", Certificates: []tls.Certificate{clientCert}},
	} {
		_, err := dial(ctx, "passthrough:///"+addr, addr, 5*time.Second, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		wantTLSRefusal(t, name, tlsHint(err)) // as Dial words it
	}
	// Plain text on the TLS port.
	if _, err := dial(ctx, "passthrough:///"+addr, addr, 5*time.Second, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		t.Error("plain-text client accepted")
	}
	// Dial with a certificate of another CA gives an error naming where
	// and what is wrong.
	_, err = Dial(ctx, DialOptions{Addr: addr, CertFile: p.otherCert, KeyFile: p.otherKey, CAFile: p.ca})
	if err == nil || !strings.Contains(err.Error(), "edge at "+addr) {
		t.Errorf("intruder: %v", err)
	}
	wantTLSRefusal(t, "intruder", err)
}

// wantTLSRefusal checks that a refused TLS client's error says why: a
// certificate or the handshake, not just any failure.
func wantTLSRefusal(t *testing.T, name string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted", name)
		return
	}
	msg := err.Error()
	if !strings.Contains(msg, "certificate") && !strings.Contains(msg, "handshake") {
		t.Errorf("%s: the error does not mention the certificate or the handshake: %v", name, err)
		return
	}
	t.Logf("%s: %v", name, err)
}

// With allowed identities, a certificate of the right CA but another
// identity is refused at the handshake.
func TestMutualTLSAllowedIdentities(t *testing.T) {
	p := newTestPKI(t)
	l, err := ListenTLS("127.0.0.1:0", p.serverCert, p.serverKey, p.ca, "ops-admin", "client")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(newFake())
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	addr := l.Addr().String()
	ctx := ctxT(t)
	c, err := Dial(ctx, DialOptions{Addr: addr, CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.ca})
	if err != nil {
		t.Fatalf("allowed identity: %v", err)
	}
	c.Close()
	_, err = Dial(ctx, DialOptions{Addr: addr, CertFile: p.otherClientCert, KeyFile: p.otherClientKey, CAFile: p.ca})
	if err == nil {
		t.Fatal("a certificate of the CA with another identity was accepted")
	}
	wantTLSRefusal(t, "other identity", err)
}

func TestAllowIdentities(t *testing.T) {
	verify := AllowIdentities("ops-admin", "edge-ctl.example.net", "spiffe://example.net/edge/ops")
	u, _ := url.Parse("spiffe://example.net/edge/ops")
	for name, c := range map[string]struct {
		cert x509.Certificate
		ok   bool
	}{
		"common name":   {x509.Certificate{Subject: pkix.Name{CommonName: "ops-admin"}}, true},
		"DNS SAN":       {x509.Certificate{Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{"a", "edge-ctl.example.net"}}, true},
		"URI SAN":       {x509.Certificate{URIs: []*url.URL{u}}, true},
		"other":         {x509.Certificate{Subject: pkix.Name{CommonName: "ops-admin2"}, DNSNames: []string{"example.net"}}, false},
		"case matters":  {x509.Certificate{Subject: pkix.Name{CommonName: "OPS-ADMIN"}}, false},
		"no identities": {x509.Certificate{SerialNumber: big.NewInt(1)}, false},
	} {
		cert := c.cert
		if cert.SerialNumber == nil {
			cert.SerialNumber = big.NewInt(7)
		}
		err := verify(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{&cert}}})
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want allowed %v", name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "client certificate") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := verify(tls.ConnectionState{}); err == nil {
		t.Error("no verified chain: allowed")
	}
}

func TestListenTLSRefusesWithoutMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	for name, f := range map[string][3]string{
		"nothing": {},
		"no CA":   {p.serverCert, p.serverKey, ""},
		"no key":  {p.serverCert, "", p.ca},
		"bad CA":  {p.serverCert, p.serverKey, p.serverKey},
	} {
		if l, err := ListenTLS("127.0.0.1:0", f[0], f[1], f[2]); err == nil {
			l.Close()
			t.Errorf("%s: listening", name)
		}
	}
	cert, _ := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	for name, cfg := range map[string]*tls.Config{
		"nil":                 nil,
		"no client auth":      {Certificates: []tls.Certificate{cert}},
		"optional client":     {Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: x509.NewCertPool()},
		"no server cert":      {ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: x509.NewCertPool()},
		"required, no CA set": {Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert},
	} {
		if l, err := ListenTLSConfig("127.0.0.1:0", cfg); err == nil {
			l.Close()
			t.Errorf("%s: listening", name)
		}
	}
	if _, err := Dial(ctxT(t), DialOptions{Addr: "127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "mutual TLS needs") {
		t.Errorf("dial TCP without TLS files: %v", err)
	}
}

// serveUnix serves a fake on a unix socket at path.
func serveUnix(t *testing.T, path string) *Server {
	t.Helper()
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(newFake())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	if l.Addr().String() != path {
		t.Errorf("listener address %v, want %s", l.Addr(), path)
	}
	return srv
}

func TestUnixSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "edge")
	path := filepath.Join(dir, "edge.sock")
	srv := serveUnix(t, path)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", di.Mode())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	ctx := ctxT(t)
	c, err := Dial(ctx, DialOptions{Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Status.GetStatus(ctx, &edgepb.GetStatusRequest{})
	if err != nil || r.Version != "edge test-1.2.3" {
		t.Fatalf("status: %v, %v", r, err)
	}
	// The peer is authenticated by its uid (this process's).
	var p peer.Peer
	if _, err := c.Stats.GetStats(ctx, &edgepb.GetStatsRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}

	// A second edge on the same socket is refused.
	if l2, err := ListenUnix(path); err == nil {
		l2.Close()
		t.Fatal("second listener on a live socket")
	} else if !strings.Contains(err.Error(), "another edge is already serving") {
		t.Fatalf("second listener: %v", err)
	}
	// Stopping closes the listener, which removes the socket.
	srv.Stop()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

func TestUnixSocketStaleAndNotASocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.sock")
	// A stale socket: bound, closed, file left behind.
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	_, err = Dial(ctxT(t), DialOptions{Socket: path})
	if err == nil || err.Error() != "edge is not running (socket "+path+" refuses connections)" {
		t.Fatalf("dial a stale socket: %v", err)
	}
	serveUnix(t, path)
	c, err := Dial(ctxT(t), DialOptions{Socket: path})
	if err != nil {
		t.Fatalf("after replacing a stale socket: %v", err)
	}
	c.Close()

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := ListenUnix(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("listen over a file: %v", err)
	}
	if _, err := Dial(ctxT(t), DialOptions{Socket: file}); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("dial a file: %v", err)
	}
}

// The socket's directory: created 0700; an existing one is refused when
// others could tamper with it.
func TestUnixSocketDirectory(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if l, err := ListenUnix(filepath.Join(link, "edge.sock")); err == nil {
		l.Close()
		t.Fatal("listening in a symlinked directory")
	} else if !strings.Contains(err.Error(), "is a symlink") {
		t.Fatalf("symlinked directory: %v", err)
	}
	for _, mode := range []os.FileMode{0o770, 0o777, 0o1777, 0o702} {
		d := filepath.Join(base, fmt.Sprintf("m%o", mode))
		os.Mkdir(d, 0o700)
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		if l, err := ListenUnix(filepath.Join(d, "edge.sock")); err == nil {
			l.Close()
			t.Errorf("listening in a directory of mode %v", mode)
		} else if !strings.Contains(err.Error(), "writable by its group or others") {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	// 0755 is fine (others may enter, the socket's mode keeps them out).
	ok := filepath.Join(base, "ok")
	os.Mkdir(ok, 0o755)
	os.Chmod(ok, 0o755)
	l, err := ListenUnix(filepath.Join(ok, "edge.sock"))
	if err != nil {
		t.Fatalf("0755 directory: %v", err)
	}
	l.Close()
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if l, err := ListenUnix(filepath.Join(other, "edge.sock")); err == nil {
			l.Close()
			t.Error("listening in a directory of another uid")
		} else if !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("other owner: %v", err)
		}
	}
}

// The socket is created 0600 whatever the umask.
func TestUnixSocketModeUmask(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.sock")
	old := unix.Umask(0)
	defer unix.Umask(old)
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode(), err)
	}
	if now := unix.Umask(0); now != 0 {
		t.Fatalf("umask left at %o", now)
	}
}

// A relative --socket gives the same messages as an absolute one.
func TestDialRelativeSocket(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	_, err := Dial(ctxT(t), DialOptions{Socket: "edge.sock"})
	if err == nil || err.Error() != "edge is not running (no socket at edge.sock)" {
		t.Fatalf("no socket: %v", err)
	}
	old, err := net.Listen("unix", "edge.sock")
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	_, err = Dial(ctxT(t), DialOptions{Socket: "edge.sock"})
	if err == nil || err.Error() != "edge is not running (socket edge.sock refuses connections)" {
		t.Fatalf("stale socket: %v", err)
	}
}

func TestDialNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.sock")
	_, err := Dial(ctxT(t), DialOptions{Socket: path})
	if err == nil || err.Error() != "edge is not running (no socket at "+path+")" {
		t.Fatalf("no socket: %v", err)
	}
	// A TCP port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := newTestPKI(t)
	_, err = Dial(ctxT(t), DialOptions{Addr: addr, CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.ca})
	if err == nil || err.Error() != "cannot reach edge at "+addr+": connection refused" {
		t.Fatalf("closed port: %v", err)
	}
}

// connectAs connects to the unix socket at path from a thread whose
// effective uid is uid (SO_PEERCRED reports the connecting thread's
// credentials). It needs root.
func connectAs(path string, uid int) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked if the uid cannot be restored: the thread then dies with us
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			runtime.UnlockOSThread()
			ch <- result{nil, e}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				unix.Close(fd)
			}
		}
		_, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0))
		if e == 0 {
			runtime.UnlockOSThread()
		}
		if err != nil {
			ch <- result{nil, err}
			return
		}
		f := os.NewFile(uintptr(fd), path)
		c, err := net.FileConn(f)
		f.Close()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func TestUnixPeerOtherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect with another uid")
	}
	const nobody = 65534
	base := t.TempDir()
	dir := filepath.Join(base, "sock")
	path := filepath.Join(dir, "edge.sock")
	serveUnix(t, path)

	// The socket's mode keeps other users out.
	for _, d := range []string{filepath.Dir(base), base, dir} {
		os.Chmod(d, 0o755)
	}
	if c, err := connectAs(path, nobody); err == nil {
		c.Close()
		t.Fatal("uid 65534 connected to a 0600 socket")
	} else if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot change uid here: %v", err)
	} else if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("connect as uid 65534: %v", err)
	}

	// With the mode loosened, the server still refuses the call.
	os.Chmod(path, 0o666)
	conn, err := connectAs(path, nobody)
	if err != nil {
		t.Fatal(err)
	}
	used := false
	cc, err := grpc.NewClient("passthrough:///unix", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			if used {
				return nil, errors.New("one connection only")
			}
			used = true
			return conn, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = edgepb.NewStatusServiceClient(cc).GetStatus(ctxT(t), &edgepb.GetStatusRequest{})
	wantCode(t, err, codes.PermissionDenied, "uid 65534 may not use edge's control socket")
}

type fakeAuthInfo struct{}

func (fakeAuthInfo) AuthType() string { return "fake" }

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context    { return s.ctx }
func (s fakeStream) SetHeader(metadata.MD) error { return nil }

func TestAuthorize(t *testing.T) {
	s := &Server{uid: 1000, opts: options{uids: []uint32{2000}}}
	verified := tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13, VerifiedChains: [][]*x509.Certificate{{{}}}}
	tls12 := verified
	tls12.Version = tls.VersionTLS12
	cases := []struct {
		name string
		ai   credentials.AuthInfo
		code codes.Code
	}{
		{"root", UnixPeer{UID: 0}, codes.OK},
		{"server's uid", UnixPeer{UID: 1000}, codes.OK},
		{"allowed uid", UnixPeer{UID: 2000}, codes.OK},
		{"other uid", UnixPeer{UID: 1001}, codes.PermissionDenied},
		{"verified TLS 1.3", credentials.TLSInfo{State: verified}, codes.OK},
		{"TLS without client chain", credentials.TLSInfo{State: tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}}, codes.Unauthenticated},
		{"TLS 1.2", credentials.TLSInfo{State: tls12}, codes.Unauthenticated},
		{"other auth", fakeAuthInfo{}, codes.Unauthenticated},
		{"no auth info", nil, codes.Unauthenticated},
	}
	for _, c := range cases {
		ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: c.ai})
		if got := status.Code(s.authorize(ctx)); got != c.code {
			t.Errorf("%s: %v, want %v", c.name, got, c.code)
		}
		called := false
		_, err := s.unaryAuth(ctx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { called = true; return nil, nil })
		if called != (c.code == codes.OK) || status.Code(err) != c.code {
			t.Errorf("%s: unary handler called %v, error %v", c.name, called, err)
		}
		called = false
		err = s.streamAuth(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{}, func(any, grpc.ServerStream) error { called = true; return nil })
		if called != (c.code == codes.OK) || status.Code(err) != c.code {
			t.Errorf("%s: stream handler called %v, error %v", c.name, called, err)
		}
	}
	if status.Code(s.authorize(context.Background())) != codes.Unauthenticated {
		t.Error("no peer: authorized")
	}
}
