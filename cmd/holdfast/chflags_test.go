package main

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chserver"
	"github.com/holdfast/holdfast/internal/chtest"
)

func TestCHClientFlags(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("from file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envPassword, "from env")
	for _, tc := range []struct {
		args        []string
		user, pw    string
		tls         bool
		compression forwarder.Compression
		err         string
	}{
		{args: nil, user: "default", pw: "from env"},
		{args: []string{"--clickhouse-user", "w", "--clickhouse-password-file", pw}, user: "w", pw: "from file"},
		{args: []string{"--clickhouse-tls", "--clickhouse-server-name", "ch.example"}, user: "default", pw: "from env", tls: true},
		{args: []string{"--clickhouse-ca-file", pw}, err: "need --clickhouse-tls"},
		{args: []string{"--clickhouse-tls", "--clickhouse-ca-file", pw}, err: "no PEM certificate"},
		{args: []string{"--clickhouse-tls", "--clickhouse-cert-file", pw}, err: "go together"},
		{args: []string{"--clickhouse-password-file", filepath.Join(dir, "missing")}, err: "password-file"},
		{args: []string{"--clickhouse-compression", "none"}, user: "default", pw: "from env", compression: forwarder.CompressionNone},
		{args: []string{"--clickhouse-compression", "zstd"}, user: "default", pw: "from env", compression: forwarder.CompressionZSTD},
		{args: []string{"--clickhouse-compression", "gzip"}, err: "--clickhouse-compression"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c := addCHClientFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var o forwarder.Options
		err := c.apply(&o)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if tc.compression == "" {
			tc.compression = forwarder.CompressionLZ4
		}
		if err != nil || o.Username != tc.user || o.Password != tc.pw || (o.TLS != nil) != tc.tls || o.Compression != tc.compression {
			t.Errorf("%v: user %q password %q tls %v compression %q err %v", tc.args, o.Username, o.Password, o.TLS != nil, o.Compression, err)
		}
	}
}

// TestForwardWrongPasswordExitsNamingTheUser: `holdfast forward` with a
// wrong password exits 1 at once with an error naming the user, instead of
// retrying forever.
func TestForwardWrongPasswordExitsNamingTheUser(t *testing.T) {
	addr := chtest.Addr(t)
	t.Setenv(envPassword, "not the password")
	code, _, stderr := runCmd("forward", "--data-dir", t.TempDir(), "--clickhouse", addr, "--database", "test_wrong_password", "--generate", "10", "--exit-when-drained")
	if code != 1 || !strings.Contains(stderr, `user "default"`) || !strings.Contains(stderr, "refused the credentials") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestSchemaCluster(t *testing.T) {
	code, out, stderr := runCmd("schema", "--cluster", "prod", "--database", "m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"CREATE DATABASE IF NOT EXISTS m ON CLUSTER prod;",
		"CREATE TABLE IF NOT EXISTS m.measurements_f64_local ON CLUSTER prod (",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/m/measurements_f64', '{replica}')",
		"ENGINE = Distributed(prod, m, measurements_f64_local, timeseries_key);",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("schema --cluster lacks %q", want)
		}
	}
	if code, _, _ := runCmd("schema", "--cluster", "bad;name"); code != 2 {
		t.Errorf("a bad cluster name exits %d, want 2", code)
	}
}

// TestForwardOverTLSWithClientCertificate: `holdfast forward` with every
// ClickHouse client flag against a private 18.16 server that has a user
// with a password and TLS on tcp_port_secure demanding a client certificate
// from the test's CA: the samples arrive. Without the client certificate the
// server refuses the connection.
func TestForwardOverTLSWithClientCertificate(t *testing.T) {
	chtest.Addr(t) // ClickHouse is installed where this is set
	dir := t.TempDir()
	certs := chtest.MakeTLSFiles(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := chserver.StartWith(ctx, filepath.Join(dir, "ch"), chserver.Extra{
		Users:   `<writer><password>tls pass</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></writer>`,
		TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TLSClientCA: certs.CA,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("tls pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd("forward", "--data-dir", filepath.Join(dir, "data"), "--database", "tls_test",
		"--clickhouse", srv.SecureAddr, "--clickhouse-user", "writer", "--clickhouse-password-file", pw,
		"--clickhouse-tls", "--clickhouse-ca-file", certs.CA, "--clickhouse-server-name", "clickhouse.test",
		"--clickhouse-cert-file", certs.ClientCert, "--clickhouse-key-file", certs.ClientKey,
		"--generate", "2000", "--vms", "10", "--exit-when-drained")
	if code != 0 || !strings.Contains(out, "drained") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	conn, err := forwarder.Dial(srv.Addr, "default", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM tls_test.measurements_f64 FINAL").Scan(&n); err != nil || n == 0 {
		t.Fatalf("measurements_f64 holds %d rows (%v)", n, err)
	}
	noCert, err := forwarder.DialWith(forwarder.ConnOptions{Addr: srv.SecureAddr, Username: "writer", Password: "tls pass",
		TLS: &tls.Config{RootCAs: certs.Pool, ServerName: "clickhouse.test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer noCert.Close()
	err = noCert.Ping(ctx)
	if err == nil {
		t.Fatal("the server accepted a TLS client without a certificate; the client-certificate flags prove nothing")
	}
	t.Logf("without a client certificate: %v", err)
}

// TestForwardKeepsEveryClientOption: `holdfast forward` hands the forwarder
// every option its --clickhouse-* flags set, not a chosen few (compression
// was once parsed, checked and then dropped).
func TestForwardKeepsEveryClientOption(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := addCHClientFlags(fs)
	if err := fs.Parse([]string{"--clickhouse-user", "w", "--clickhouse-tls", "--clickhouse-server-name", "ch.example", "--clickhouse-compression", "none"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envPassword, "pw")
	var client forwarder.Options
	if err := c.apply(&client); err != nil {
		t.Fatal(err)
	}
	cfg := forwardConfig{dataDir: "/data", addr: "ch:9000", db: "metrics", cluster: "c1", client: client}
	got := cfg.forwarderOptions(nil, nil)
	if got.Addr != "ch:9000" || got.Database != "metrics" || got.Cluster != "c1" || got.SessionDir != filepath.Join("/data", "sessions") {
		t.Errorf("run options: addr %q database %q cluster %q session dir %q", got.Addr, got.Database, got.Cluster, got.SessionDir)
	}
	got.Addr, got.Database, got.Cluster, got.SessionDir = "", "", "", ""
	if !reflect.DeepEqual(got, client) {
		t.Errorf("client options changed on the way to the forwarder:\n got  %+v\n want %+v", got, client)
	}
	if got.Compression != forwarder.CompressionNone || got.Username != "w" || got.Password != "pw" || got.TLS == nil || got.TLS.ServerName != "ch.example" {
		t.Errorf("client options: %+v", got)
	}
}
