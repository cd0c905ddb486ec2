package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
)

// TestCollectorConfigClickHouseClientKeys: the collector's --config file sets
// --cluster and every ClickHouse client flag (user, password file, TLS with
// CA, client certificate and server name), command-line flags win over it,
// and a plain clickhouse_password key is refused naming the alternatives.
func TestCollectorConfigClickHouseClientKeys(t *testing.T) {
	dir := t.TempDir()
	tf := chtest.MakeTLSFiles(t, dir)
	pw := filepath.Join(dir, "pw")
	other := filepath.Join(dir, "other-pw")
	os.WriteFile(pw, []byte("from config's file\n"), 0o600)
	os.WriteFile(other, []byte("from flag's file\n"), 0o600)
	t.Setenv(envPassword, "from env")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("c.json", `{"cluster": "prod", "clickhouse_user": "writer", "clickhouse_password_file": "`+pw+`",
		"clickhouse_tls": true, "clickhouse_ca_file": "`+tf.CA+`", "clickhouse_cert_file": "`+tf.ClientCert+`",
		"clickhouse_key_file": "`+tf.ClientKey+`", "clickhouse_server_name": "clickhouse.test"}`)
	// The same flags runCollector defines for these keys.
	parse := func(args ...string) (forwarder.Options, error) {
		fs := flag.NewFlagSet("collector", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cluster := fs.String("cluster", "", "")
		c := addCHClientFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if err := collectorFile.applyConfigFile(cfg, set, fs); err != nil {
			return forwarder.Options{}, err
		}
		o := forwarder.Options{Cluster: *cluster}
		err := c.apply(&o)
		return o, err
	}
	o, err := parse()
	if err != nil || o.Cluster != "prod" || o.Username != "writer" || o.Password != "from config's file" || o.TLS == nil ||
		o.TLS.ServerName != "clickhouse.test" || o.TLS.RootCAs == nil || len(o.TLS.Certificates) != 1 {
		t.Fatalf("from the config: %+v, err %v", o, err)
	}
	o, err = parse("--cluster", "other", "--clickhouse-user", "u2", "--clickhouse-password-file", other, "--clickhouse-server-name", "ch2.test")
	if err != nil || o.Cluster != "other" || o.Username != "u2" || o.Password != "from flag's file" || o.TLS.ServerName != "ch2.test" {
		t.Fatalf("flags must win: %+v, err %v", o, err)
	}
	// --clickhouse-tls=false on the command line beats the config's true;
	// the config's CA then has nothing to apply to, which is said.
	if _, err := parse("--clickhouse-tls=false"); err == nil || !strings.Contains(err.Error(), "need --clickhouse-tls") {
		t.Fatalf("--clickhouse-tls=false over the config: %v", err)
	}

	// Through the real command: the config's TLS settings are applied (a
	// CA file that is no PEM is refused before anything starts), and a
	// password key is refused.
	bad := write("bad-ca.json", `{"clickhouse_tls": true, "clickhouse_ca_file": "`+pw+`"}`)
	if code, _, stderr := runCmd("collector", "--config", bad, "--data-dir", t.TempDir()); code != 2 || !strings.Contains(stderr, "no PEM certificate") {
		t.Fatalf("config with a non-PEM CA: exit %d, %s", code, stderr)
	}
	plain := write("plain.json", `{"clickhouse_user": "writer", "clickhouse_password": "hunter2"}`)
	code, _, stderr := runCmd("collector", "--config", plain, "--data-dir", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "clickhouse_password_file") || !strings.Contains(stderr, envPassword) || strings.Contains(stderr, "hunter2") {
		t.Fatalf("config with a plain password: exit %d, %s", code, stderr)
	}
}
