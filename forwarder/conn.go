package forwarder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ConnOptions say how to reach ClickHouse like a production client: several
// addresses, a user with a password, TLS.
type ConnOptions struct {
	// Addr is one native-protocol host:port or several separated by commas
	// (a cluster's replicas are natural candidates). They are tried in
	// order at every new connection, so when the first is down the next
	// one serves, and the forwarder's retry loop gets there by itself.
	Addr        string
	Username    string // default "default"
	Password    string
	DialTimeout time.Duration // default 5 s
	// TLS, when set, speaks TLS to the server's tcp_port_secure.
	TLS *tls.Config
	// Compression of the blocks sent and received: CompressionLZ4 (the
	// default, ""), CompressionZSTD or CompressionNone (ParseCompression).
	Compression Compression
	// WriteTimeout bounds each write to the server (default 2 minutes,
	// as the reads): clickhouse-go sets no write deadline, and watches an
	// INSERT's context only while it sends the last block, so a server
	// that stops reading would otherwise hold a delivery for as long as
	// TCP keeps the connection.
	WriteTimeout time.Duration
}

// Compression is how blocks travel between holdfast and ClickHouse.
type Compression string

const (
	// CompressionLZ4 is the default: cheap, about 3x on the benchmarks'
	// rows, and what clickhouse-client uses.
	CompressionLZ4 Compression = "lz4"
	// CompressionZSTD is smaller on the wire at more CPU on both sides:
	// for a ClickHouse across a slow or metered link.
	CompressionZSTD Compression = "zstd"
	// CompressionNone saves both sides the compression (LZ4 was 18 % of
	// the collector's CPU at bench max's 200,000 VMs): for a ClickHouse on
	// the same host or a fast local network.
	CompressionNone Compression = "none"
)

// ParseCompression reads a --clickhouse-compression value; "" is LZ4.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(strings.TrimSpace(s))); c {
	case "":
		return CompressionLZ4, nil
	case CompressionLZ4, CompressionZSTD, CompressionNone:
		return c, nil
	}
	return "", fmt.Errorf("forwarder: ClickHouse compression %q is none of lz4, zstd, none", s)
}

// method is c's clickhouse-go compression, nil for none.
func (c Compression) method() (*clickhouse.Compression, error) {
	c, err := ParseCompression(string(c))
	switch {
	case err != nil:
		return nil, err
	case c == CompressionNone:
		return nil, nil
	case c == CompressionZSTD:
		return &clickhouse.Compression{Method: clickhouse.CompressionZSTD}, nil
	}
	return &clickhouse.Compression{Method: clickhouse.CompressionLZ4}, nil
}

// ErrAuth is the sentinel of AuthError.
var ErrAuth = errors.New("forwarder: ClickHouse refused the credentials")

// AuthError is ClickHouse refusing the user or password. Retrying does not
// fix it, so the forwarder stops with it (and the collector exits) instead
// of retrying forever.
type AuthError struct {
	User string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%v: user %q: %v (check --clickhouse-user and the password file or HOLDFAST_CLICKHOUSE_PASSWORD)", ErrAuth, e.User, e.Err)
}
func (e *AuthError) Unwrap() []error { return []error{ErrAuth, e.Err} }

// authCodes are ClickHouse's "who are you" errors: UNKNOWN_USER,
// WRONG_PASSWORD, REQUIRED_PASSWORD (18.16 and later), and
// AUTHENTICATION_FAILED (20.x and later, which no longer says which).
var authCodes = map[int32]bool{192: true, 193: true, 194: true, 516: true}

// asAuthError returns an *AuthError for user when err is an authentication
// failure, else nil.
func asAuthError(err error, user string) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && authCodes[ex.Code] {
		return &AuthError{User: user, Err: err}
	}
	return nil
}

// SplitAddrs splits a comma-separated address list and checks each is
// host:port.
func SplitAddrs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, fmt.Errorf("forwarder: ClickHouse address %q is not host:port", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("forwarder: no ClickHouse address")
	}
	return out, nil
}

// DialWith opens a native-protocol connection pool (LZ4 unless
// o.Compression says otherwise; each write bounded by o.WriteTimeout). It
// does not contact the server: the first query does, so a collector starts
// even when ClickHouse is down.
func DialWith(o ConnOptions) (driver.Conn, error) {
	addrs, err := SplitAddrs(o.Addr)
	if err != nil {
		return nil, err
	}
	if o.Username == "" {
		o.Username = "default"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 2 * time.Minute
	}
	compression, err := o.Compression.method()
	if err != nil {
		return nil, err
	}
	return clickhouse.Open(&clickhouse.Options{
		Addr:            addrs,
		Auth:            clickhouse.Auth{Database: "default", Username: o.Username, Password: o.Password},
		Protocol:        clickhouse.Native,
		DialContext:     dialBoundingWrites(o),
		Compression:     compression,
		DialTimeout:     o.DialTimeout,
		MaxOpenConns:    4,
		MaxIdleConns:    2,
		ConnMaxLifetime: time.Hour,
		// Bounds every read of a query or an INSERT (see writer.send).
		ReadTimeout:      2 * time.Minute,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	})
}

// checkServer contacts ClickHouse once at start-up, bounded by the dial
// timeout. Wrong credentials are returned (fatal); any other failure is only
// logged (a failed handshake also goes into the status, with a hint): the
// server may come later, and
// collection goes on meanwhile.
func (f *Forwarder) checkServer(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 2*f.opts.DialTimeout)
	defer cancel()
	err := f.conn.Ping(pctx)
	if err == nil {
		f.mu.Lock()
		f.mu.status.Reached = true
		f.mu.Unlock()
		// Shown at once; the path is chosen before the first insert
		// (choosePath), where the schema exists for its ALTERs.
		if _, raw, verr := detectVersion(pctx, f.conn); verr == nil {
			f.log.Info("ClickHouse answers", "addr", f.opts.Addr, "version", raw)
			f.mu.Lock()
			f.mu.status.ServerVersion = raw
			f.mu.Unlock()
		}
		return nil
	}
	if aerr := asAuthError(err, f.opts.Username); aerr != nil {
		return aerr
	}
	err = handshakeHint(err)
	f.log.Warn("ClickHouse does not answer at start-up; collecting into the WAL and retrying", "addr", f.opts.Addr, "err", err)
	if strings.Contains(err.Error(), portHint) {
		// Shown in the status (and /v1/status) now, not after the
		// first batch's retries.
		f.mu.Lock()
		f.mu.status.LastInsertError = err.Error()
		f.mu.status.StartupError = err.Error()
		f.mu.status.LastErrorTime = time.Now()
		f.mu.Unlock()
		// An insert clears it too, but an idle collector may have
		// nothing to insert for a long time.
		go f.recheckServer(ctx)
	}
	return nil
}

// recheckServer pings ClickHouse every few dial timeouts after a failed
// start-up check until one answers (the address now reaches a server: a
// failover target, or the operator fixed the port forward) or ctx ends,
// then clears the status's StartupError.
func (f *Forwarder) recheckServer(ctx context.Context) {
	every := 3 * f.opts.DialTimeout
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		pctx, cancel := context.WithTimeout(ctx, 2*f.opts.DialTimeout)
		err := f.conn.Ping(pctx)
		cancel()
		if err == nil {
			f.mu.Lock()
			f.mu.status.StartupError = ""
			f.mu.status.Reached = true
			f.mu.Unlock()
			f.log.Info("ClickHouse answers now", "addr", f.opts.Addr)
			return
		}
	}
}

const portHint = "is this ClickHouse's native protocol port? 9000 (9440 with TLS), not HTTP 8123; TLS to a plain port or plain text to a TLS port fails the same way"

// handshakeHint adds what a failed native-protocol handshake usually means:
// an HTTP port answers nothing to the client's hello, so the handshake
// times out (18.16 and later), or garbage comes back.
func handshakeHint(err error) error {
	if err != nil && strings.Contains(err.Error(), "handshake") {
		return fmt.Errorf("%w (%s)", err, portHint)
	}
	return err
}

// dialBoundingWrites dials as clickhouse-go does itself (TCP with the dial
// timeout, TLS with o.TLS when set, the server name from the address when
// the config has none) and bounds the connection's writes.
func dialBoundingWrites(o ConnOptions) func(context.Context, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.DialTimeout}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		if o.TLS != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: o.TLS}).DialContext(ctx, "tcp", addr)
		} else {
			c, err = d.DialContext(ctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		return &boundedWrites{Conn: c, timeout: o.WriteTimeout}, nil
	}
}

// boundedWrites gives every Write a deadline: the caller's write deadline
// if it set an earlier one, else timeout from now.
type boundedWrites struct {
	net.Conn
	timeout time.Duration

	mu       sync.Mutex
	deadline time.Time // the caller's write deadline; zero: none
}

func (c *boundedWrites) SetDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetDeadline(t)
}

func (c *boundedWrites) SetWriteDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *boundedWrites) note(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
}

func (c *boundedWrites) Write(p []byte) (int, error) {
	d := time.Now().Add(c.timeout)
	c.mu.Lock()
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	c.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SyscallConn is the TCP socket's, through TLS: clickhouse-go checks a
// pooled connection's socket for a close by the server before reusing it
// (conn_check.go), and skips the check for a connection without one.
func (c *boundedWrites) SyscallConn() (syscall.RawConn, error) {
	inner := c.Conn
	if t, ok := inner.(*tls.Conn); ok {
		inner = t.NetConn()
	}
	if s, ok := inner.(syscall.Conn); ok {
		return s.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
