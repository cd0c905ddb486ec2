package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// printed runs `holdfast DAEMON args... --print-config` in-process.
func printed(t *testing.T, daemon string, args ...string) string {
	t.Helper()
	code, out, stderr := runCmd(append([]string{daemon, "--print-config"}, args...)...)
	if code != 0 {
		t.Fatalf("%s %v --print-config: exit %d: %s", daemon, args, code, stderr)
	}
	return out
}

// TestConfigYAMLAndJSONAgree: the same settings as YAML (with comments and
// a list) and as JSON give the same effective configuration on each
// daemon, and it differs from the defaults in exactly those keys.
func TestConfigYAMLAndJSONAgree(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		daemon, yaml, json string
		want               []string
	}{
		{"collector",
			"# a comment\nwal_budget: 10GB   # powers of ten\nproducers:\n  - http://a:9500\n  - http://b:9500\nregistry: http://r:9400\nlog_level: debug\npage_limit: 500\nadmin_allow_remote: true\n",
			`{"wal_budget": "10GB", "producers": ["http://a:9500", "http://b:9500"], "registry": "http://r:9400", "log_level": "debug", "page_limit": 500, "admin_allow_remote": true}`,
			[]string{"wal_budget: 10GB", "  - http://a:9500", "  - http://b:9500", "registry: http://r:9400", "log_level: debug", "page_limit: 500", "admin_allow_remote: true"}},
		{"registry", "replicas: 2\ncollector_lease: 1m\n", `{"replicas": 2, "collector_lease": "1m"}`,
			[]string{"replicas: 2", "collector_lease: 1m0s"}},
		{"producer", "vms: 3\ncollectors: [c1, c2]\nmax_bytes: 512MiB\n", `{"vms": 3, "collectors": ["c1", "c2"], "max_bytes": "512MiB"}`,
			[]string{"vms: 3", "  - c1", "max_bytes: 512MiB"}},
	} {
		y := printed(t, tc.daemon, "--config", writeFile(t, dir, tc.daemon+".yml", tc.yaml))
		j := printed(t, tc.daemon, "--config", writeFile(t, dir, tc.daemon+".json", tc.json))
		if y != j {
			t.Errorf("%s: YAML and JSON differ:\n%s\n---\n%s", tc.daemon, y, j)
		}
		def := printed(t, tc.daemon)
		for _, w := range tc.want {
			if !strings.Contains(y, w+"\n") || strings.Contains(def, w+"\n") {
				t.Errorf("%s: %q should be in the file's config and not in the defaults:\n%s", tc.daemon, w, y)
			}
		}
	}
}

// TestConfigErrors: every kind of bad file is refused at start-up (exit 2)
// with the file, line and column, and the key; a value's error quotes the
// whole value.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, daemon, body string
		want               []string
	}{
		{"unknown key", "collector", "listen: 127.0.0.1:0\nwal_budgit: 1GB\n", []string{":2:1: wal_budgit: unknown key"}},
		{"dashes", "collector", "\n\ndata-dir: /x\n", []string{":3:1: data-dir: unknown key; did you mean data_dir?"}},
		{"flag name of a list", "collector", "producer: http://a:1\n", []string{":1:1: producer: unknown key; did you mean producers?"}},
		{"twice", "registry", "replicas: 2\nreplicas: 3\n", []string{":2:1: replicas: given twice"}},
		{"list for one value", "registry", "listen: [a, b]\n", []string{":1:9: listen: takes one value, not a list"}},
		{"mapping", "producer", "vms:\n  n: 3\n", []string{":2:3: vms: takes a plain value, not a mapping"}},
		{"size", "collector", "wal_budget: 10 XB\n", []string{":1:13: wal_budget: invalid value \"10 XB\": not a size", "powers of ten"}},
		{"registry without scheme", "collector", "registry: 127.0.0.1:9400\n", []string{":1:11: registry: invalid value \"127.0.0.1:9400\"", "use http://127.0.0.1:9400"}},
		{"clickhouse with scheme", "collector", "{\"clickhouse\": \"http://ch:8123\"}", []string{":1:16: clickhouse: invalid value \"http://ch:8123\"", "use ch:9000"}},
		{"producer without scheme", "collector", "producers:\n  - http://ok:1\n  - 10.0.0.1:9500\n", []string{":3:5: producers: invalid value \"10.0.0.1:9500\"", "use http://10.0.0.1:9500"}},
		{"duration", "producer", "interval: soon\n", []string{":1:11: interval: invalid value \"soon\"", "want a duration"}},
		{"number", "producer", "vms: many\n", []string{":1:6: vms: invalid value \"many\"", "want an integer"}},
		{"password", "collector", "clickhouse_password: hunter2\n", []string{":1:1: clickhouse_password: not accepted", "clickhouse_password_file"}},
		{"malformed", "collector", "producers: [\n", []string{"line 1"}},
		{"not a mapping", "registry", "- a\n- b\n", []string{":1:1: expected a mapping"}},
		{"two documents", "registry", "replicas: 2\n---\nreplicas: 3\n", []string{":2:1: more than one YAML document"}},
	} {
		path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".yml", tc.body)
		code, _, stderr := runCmd(tc.daemon, "--config", path, "--listen", "127.0.0.1:0")
		if code != 2 {
			t.Errorf("%s: exit %d, want 2: %s", tc.name, code, stderr)
		}
		for _, w := range append([]string{"config " + path}, tc.want...) {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: no %q in %q", tc.name, w, stderr)
			}
		}
		if strings.Contains(stderr, "hunter2") {
			t.Errorf("%s: the password is echoed: %s", tc.name, stderr)
		}
	}
}

// TestConfigAllOrNothing: a file whose last key is bad changes no flag,
// the earlier good keys included (a SIGHUP reload relies on it).
func TestConfigAllOrNothing(t *testing.T) {
	fs := flag.NewFlagSet("c", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := defineCollectorFlags(fs)
	err := collectorFile.applyConfig("c.yml", []byte("interval: 1s\nproducers: [http://a:1]\nwal_budget: lots\n"), map[string]bool{}, fs)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 3 || ce.Key != "wal_budget" || !errors.Is(err, errNotASize) {
		t.Fatalf("err %v", err)
	}
	if fl := fs.Lookup("interval"); fl.Value.String() != fl.DefValue || len(f.producers) != 0 {
		t.Fatalf("a refused file changed flags: interval %v, producers %v", *f.interval, f.producers)
	}
}

// TestFlagsWinOverConfig: a flag on the command line beats the file's key,
// for a plain value and for a list, and the other keys still apply.
func TestFlagsWinOverConfig(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "c.yml", "interval: 3s\nproducers: [http://file:1]\ndatabase: fromfile\n")
	out := printed(t, "collector", "--config", cfg, "--interval", "7s", "--producer", "http://flag:1")
	for _, w := range []string{"interval: 7s\n", "  - http://flag:1\n", "database: fromfile\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
	if strings.Contains(out, "http://file:1") {
		t.Errorf("the file's producers were added to the flag's:\n%s", out)
	}
}

// TestPrintConfigRoundTrip: --print-config's output, fed back as --config,
// prints the same again on every daemon (so it is a valid config file),
// with tokens as <redacted> and never in clear.
func TestPrintConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		daemon string
		args   []string
	}{
		{"collector", []string{"--producer-token", "sekret-p", "--registry-token", "sekret-r", "--producer", "http://a:1", "--wal-budget", "1.5GB", "--data-dir", "/var/lib/x"}},
		{"registry", []string{"--auth-token", "sekret-a", "--replicas", "3", "--data-dir", "/var/lib/y"}},
		{"producer", []string{"--auth-token", "sekret-a", "--registry-token", "sekret-r", "--collector", "c1", "--max-bytes", "1MB"}},
	} {
		first := printed(t, tc.daemon, tc.args...)
		if strings.Contains(first, "sekret") || !strings.Contains(first, "<redacted>") {
			t.Fatalf("%s: tokens not redacted:\n%s", tc.daemon, first)
		}
		// Without the tokens (a redacted token would load as the word
		// <redacted>), the output loads back and prints identically.
		var args []string
		for i := 0; i < len(tc.args); i += 2 {
			if !strings.HasSuffix(tc.args[i], "token") {
				args = append(args, tc.args[i], tc.args[i+1])
			}
		}
		out := printed(t, tc.daemon, args...)
		path := writeFile(t, dir, tc.daemon+".yml", out)
		if again := printed(t, tc.daemon, "--config", path); again != out {
			t.Errorf("%s: printed config does not round-trip:\n%s\n---\n%s", tc.daemon, out, again)
		}
	}
}

// TestSizes: the units, which are powers of ten and which of two, and
// errors that quote the whole value and name the flag.
func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1048576", 1 << 20}, {"0", 0}, {"512MB", 512e6}, {"512MiB", 512 << 20}, {"10GB", 10e9}, {"10G", 10e9},
		{"10GiB", 10 << 30}, {"10Gi", 10 << 30}, {"10gb", 10e9}, {"4 GiB", 4 << 30}, {"1.5GB", 1.5e9}, {"0.5KiB", 512},
		{"2TB", 2e12}, {"1TiB", 1 << 40}, {"64KB", 64e3}, {"64k", 64e3}, {"100B", 100},
	} {
		got, err := parseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, err := parseBytes(formatBytes(got)); err != nil || back != got {
			t.Errorf("formatBytes(%d) = %q reads back as %d, %v", got, formatBytes(got), back, err)
		}
	}
	for _, bad := range []string{"", "GB", "10XB", "-1", "-1GB", "ten", "9999999999TB", "1e3", "0x10", "NaNGB", "1.2.3MB"} {
		if _, err := parseBytes(bad); !errors.Is(err, errNotASize) {
			t.Errorf("parseBytes(%q): %v, want errNotASize", bad, err)
		}
	}
	if formatBytes(10e9) != "10GB" || formatBytes(4<<30) != "4GiB" || formatBytes(1000) != "1KB" || formatBytes(1001) != "1001" {
		t.Errorf("formatBytes: %s %s %s %s", formatBytes(10e9), formatBytes(4<<30), formatBytes(1000), formatBytes(1001))
	}
	for _, tc := range []struct{ daemon, flag string }{{"collector", "--wal-budget"}, {"collector", "--max-page-bytes"}, {"producer", "--max-bytes"}} {
		code, _, stderr := runCmd(tc.daemon, tc.flag, "12 parsecs")
		if code != 2 || !strings.Contains(stderr, `"12 parsecs"`) || !strings.Contains(stderr, tc.flag) || !strings.Contains(stderr, "powers of ten") {
			t.Errorf("%s %s '12 parsecs': exit %d, %s", tc.daemon, tc.flag, code, stderr)
		}
	}
	if code, _, stderr := runCmd("collector", "--help"); code != 0 || !strings.Contains(stderr, "KB MB GB TB (also K M G T) are powers of ten") {
		t.Errorf("collector --help does not say which units are powers of ten: %d %s", code, stderr)
	}
}

// TestAddressesRefusedAtStartUp: every address flag of every daemon (and
// its config key) refuses the wrong shape at once, exit 2, with the
// corrected form, before listening or connecting to anything.
func TestAddressesRefusedAtStartUp(t *testing.T) {
	for _, tc := range []struct {
		daemon, flag, value, fix string
	}{
		{"collector", "--registry", "127.0.0.1:9400", "use http://127.0.0.1:9400"},
		{"collector", "--registry", "ftp://r:1", "use http://r:1"},
		{"collector", "--clickhouse", "http://ch:8123", "use ch:9000"},
		{"collector", "--clickhouse", "https://ch:8443", "use ch:9440"},
		{"collector", "--clickhouse", "ch:9000,tcp://ch2:9000", "use ch2:9000"},
		{"collector", "--clickhouse", "ch", "use ch:9000"},
		{"collector", "--producer", "10.0.0.1:9500", "use http://10.0.0.1:9500"},
		{"collector", "--advertise", "10.0.0.1:9464", "use http://10.0.0.1:9464"},
		{"collector", "--listen", "http://0.0.0.0:9464", "use 0.0.0.0:9464"},
		{"registry", "--listen", "http://0.0.0.0:9400", "use 0.0.0.0:9400"},
		{"producer", "--registry", "localhost:9400", "use http://localhost:9400"},
		{"producer", "--advertise", "h:9500", "use http://h:9500"},
		{"producer", "--listen", "localhost", "use localhost:PORT"},
		{"forward", "--clickhouse", "http://ch:8123", "use ch:9000"},
	} {
		code, _, stderr := runCmd(tc.daemon, tc.flag, tc.value)
		if code != 2 || !strings.Contains(stderr, `"`+tc.value+`"`) || !strings.Contains(stderr, tc.flag[1:]) || !strings.Contains(stderr, tc.fix) {
			t.Errorf("%s %s %s: exit %d, %s", tc.daemon, tc.flag, tc.value, code, stderr)
		}
	}
	for _, good := range []struct {
		kind addrKind
		v    string
	}{
		{addrURL, "http://127.0.0.1:9400"}, {addrURL, "https://reg.example"}, {addrURL, "http://[::1]:9400/prefix"},
		{addrHostPort, "127.0.0.1:0"}, {addrHostPort, ":9464"}, {addrHostPort, "[::1]:9000"}, {addrClickHouse, "ch.example:9440"},
	} {
		if err := checkAddress(good.kind, good.v); err != nil {
			t.Errorf("checkAddress(%q): %v", good.v, err)
		}
	}
}

// TestDataDirNeverInRoot: a relative data directory goes under systemd's
// $STATE_DIRECTORY, and without it is refused when the working directory
// is / (real processes: the working directory is per process).
func TestDataDirNeverInRoot(t *testing.T) {
	bin := holdfastBinary(t)
	for _, daemon := range []string{"collector", "registry"} {
		cmd := exec.Command(bin, daemon, "--print-config")
		cmd.Dir, cmd.Env = "/", append(os.Environ(), "STATE_DIRECTORY=/var/lib/holdfast:/other")
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), "data_dir: /var/lib/holdfast/holdfast-") {
			t.Errorf("%s under systemd: %v\n%s", daemon, err, out)
		}
		cmd = exec.Command(bin, daemon, "--print-config", "--data-dir", "rel")
		cmd.Dir = "/"
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "STATE_DIRECTORY=") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		out, err = cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "working directory is /") {
			t.Errorf("%s with a relative data dir in /: %v\n%s", daemon, err, out)
		}
		cmd = exec.Command(bin, daemon, "--print-config", "--data-dir", "/abs/dir")
		cmd.Dir = "/"
		if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), "data_dir: /abs/dir\n") {
			t.Errorf("%s with an absolute data dir: %v %s", daemon, err, out)
		}
	}
}

// FuzzConfigFile: no file makes the parser panic, and a refused file
// changes nothing.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{"", "wal_budget: 1GB\n", `{"producers": ["http://a:1"]}`, "producers:\n  - x\n", "a: [1, {b: c}]", "--- !!map\n? [a]\n: b\n", "*x", "&a x: *a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := flag.NewFlagSet("c", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		defineCollectorFlags(fs)
		before := map[string]string{}
		fs.VisitAll(func(fl *flag.Flag) { before[fl.Name] = fl.Value.String() })
		if err := collectorFile.applyConfig("f", b, map[string]bool{}, fs); err != nil {
			fs.VisitAll(func(fl *flag.Flag) {
				if fl.Value.String() != before[fl.Name] {
					t.Fatalf("refused file changed %s: %v", fl.Name, err)
				}
			})
		}
	})
}
