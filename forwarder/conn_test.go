package forwarder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/chbatch"
	"github.com/holdfast/holdfast/internal/chserver"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
)

// TestCredentialsTLSAndFailover runs against a private 18.16 server with a
// user "writer" that has a password and TLS on tcp_port_secure, with a
// certificate made here: the forwarder delivers as that user in plain text
// and over TLS (verifying the certificate), fails over from a dead first
// address, and a wrong password stops Run at once with an error naming the
// user.
func TestCredentialsTLSAndFailover(t *testing.T) {
	chtest.Addr(t) // a ClickHouse is installed where this is set
	dir := t.TempDir()
	certs := chtest.MakeTLSFiles(t, dir)
	pool := certs.Pool
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := chserver.StartWith(ctx, filepath.Join(dir, "ch"), chserver.Extra{
		Users:   `<writer><password>s3cret pass</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></writer>`,
		TLSCert: certs.ServerCert, TLSKey: certs.ServerKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	deliver := func(t *testing.T, opts Options) {
		e := newEnv(t, srv.Addr)
		opts.Database, opts.FlushAge, opts.BackoffMin, opts.BackoffMax = e.db, 50*time.Millisecond, 20*time.Millisecond, 500*time.Millisecond
		opts.SessionDir = e.options().SessionDir
		samples := sampletest.NewFleet(5).Append(nil, 500, 1_700_000_000_000_000_000)
		e.appendPages(samples, 100)
		f, _ := e.start(opts)
		e.flush(f, 60*time.Second)
		if got := e.count(true); got != uint64(len(samples)) {
			t.Fatalf("%d samples arrived, want %d", got, len(samples))
		}
	}
	t.Run("user and password", func(t *testing.T) {
		deliver(t, Options{Addr: srv.Addr, Username: "writer", Password: "s3cret pass"})
	})
	t.Run("TLS with the test CA", func(t *testing.T) {
		deliver(t, Options{Addr: srv.SecureAddr, Username: "writer", Password: "s3cret pass",
			TLS: &tls.Config{RootCAs: pool, ServerName: "clickhouse.test"}})
	})
	t.Run("failover past a dead first address", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		deliver(t, Options{Addr: dead + "," + srv.Addr, Username: "writer", Password: "s3cret pass"})
	})
	t.Run("wrong password stops at start-up naming the user", func(t *testing.T) {
		e := newEnv(t, srv.Addr)
		opts := e.options()
		opts.Username, opts.Password = "writer", "wrong"
		f, err := New(e.wal, e.state, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		runErr := f.Run(ctx) // returns instead of retrying forever
		if !errors.Is(runErr, ErrAuth) || !strings.Contains(runErr.Error(), `"writer"`) {
			t.Fatalf("Run with a wrong password = %v, want ErrAuth naming user writer", runErr)
		}
		t.Logf("the error: %v", runErr)
	})
	t.Run("TLS refuses a certificate for another name", func(t *testing.T) {
		conn, err := DialWith(ConnOptions{Addr: srv.SecureAddr, Username: "writer", Password: "s3cret pass",
			TLS: &tls.Config{RootCAs: pool, ServerName: "other.test"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Ping with the wrong server name = %v, want a certificate error", err)
		}
	})
}

func TestSplitAddrs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"a:9000", []string{"a:9000"}, true},
		{"a:9000, b:9000,", []string{"a:9000", "b:9000"}, true},
		{"[::1]:9000", []string{"[::1]:9000"}, true},
		{"a", nil, false},
		{"", nil, false},
		{"a:9000,b", nil, false},
	} {
		got, err := SplitAddrs(tc.in)
		if (err == nil) != tc.ok || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("SplitAddrs(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// TestWrongPortSaysSoAtOnce: pointed at ClickHouse's HTTP port, the
// forwarder's start-up check puts a hint about the native port in its status
// without waiting for a batch.
func TestWrongPortSaysSoAtOnce(t *testing.T) {
	addr := chtest.Addr(t)
	// make test exports the server's directory, where scripts/clickhouse.sh
	// keeps its HTTP port; without it any HTTP server behaves the same way
	// towards a native-protocol hello (it waits for a request line).
	host, _, _ := net.SplitHostPort(addr)
	var wrong string
	if b, err := os.ReadFile(filepath.Join(os.Getenv("HOLDFAST_CLICKHOUSE_DIR"), "http_port")); err == nil {
		wrong = net.JoinHostPort(host, strings.TrimSpace(string(b)))
	} else {
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		wrong = srv.Listener.Addr().String()
	}
	e := newEnv(t, addr)
	opts := e.options()
	opts.Addr, opts.DialTimeout = wrong, time.Second
	f, _ := e.start(opts)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(f.Status().LastInsertError, "native protocol port"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("status after a minute: %+v", f.Status())
		}
	}
	t.Logf("status error: %s", f.Status().LastInsertError)
}

// TestWritesToAStalledServerTimeOut: a server that stops reading in the
// middle of an INSERT's blocks (a proxy that stops forwarding) fails the
// INSERT after the connection's write timeout, instead of holding the
// delivery for as long as TCP keeps the connection (clickhouse-go sets no
// write deadline of its own, and a Flush does not watch the context).
func TestWritesToAStalledServerTimeOut(t *testing.T) {
	addr := chtest.Addr(t)
	proxy := newCountingProxy(t, addr)
	conn, err := DialWith(ConnOptions{Addr: proxy.ln.Addr().String(), Compression: CompressionNone, WriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	db := fmt.Sprintf("test_stalled_%d", time.Now().UnixNano())
	for _, q := range []string{"CREATE DATABASE " + db, "CREATE TABLE " + db + ".t (s String) ENGINE = Memory"} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if c, err := Dial(addr, "default", "", 5*time.Second); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			c.Close()
		}
	}()
	rows := make([]string, 200_000) // 40 MB: far past what the sockets buffer
	for i := range rows {
		rows[i] = strings.Repeat(fmt.Sprintf("%08d", i), 25)
	}
	proxy.stallAt.Store(proxy.sent.Load() + 1<<20) // the query and 1 MiB of blocks, then nothing
	done := make(chan error, 1)
	go func() {
		done <- chbatch.SendInBlocks(ctx, conn, "INSERT INTO "+db+".t (s)", []any{rows}, 16_384)
	}()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("INSERT into a stalled server: %v, want a write deadline error", err)
		}
		t.Logf("the error: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("INSERT into a stalled server still blocked after 60 s: writes are not bounded")
	}
	// The server's half of the INSERT holds the table until its connection
	// closes; the DROP above would wait for it.
	proxy.close()
}
