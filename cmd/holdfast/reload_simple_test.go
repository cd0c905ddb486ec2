package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegistryAndProducerReloadOnSIGHUP: a registry and a producer started
// on a --config file (real processes) re-read it on SIGHUP: the new log
// level applies and the line names the changed keys that need a restart
// (a key the command line set is not one: the flag still wins); an invalid
// file is refused and the daemon keeps serving.
func TestRegistryAndProducerReloadOnSIGHUP(t *testing.T) {
	for _, tc := range []struct {
		daemon, up, body, changed, bad string
		extra                          []string
	}{
		{"registry", registryUp, "replicas: 2\n", "changed_needing_restart=[replicas]", "replicas: many\n", []string{"--data-dir", t.TempDir()}},
		{"producer", producerUp, "vms: 3\nmax_collectors: 4\n", "changed_needing_restart=[max_collectors]", "vms: [1]\n", []string{"--vms", "1"}},
	} {
		cfg := filepath.Join(t.TempDir(), tc.daemon+".yml")
		write := func(body string) {
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write("log_level: info\n")
		d, addr := startDaemon(t, tc.up, append([]string{tc.daemon, "--config", cfg, "--listen", "127.0.0.1:0"}, tc.extra...)...)
		write("log_level: debug\n" + tc.body)
		d.hup(t)
		d.waitFor(t, tc.daemon+" reloaded", func() bool { return strings.Contains(d.stderr.String(), "configuration reloaded") })
		line := d.stderr.String()[strings.Index(d.stderr.String(), "configuration reloaded"):]
		line = line[:strings.IndexByte(line, '\n')]
		if !strings.Contains(line, "log_level=DEBUG") || !strings.Contains(line, tc.changed) {
			t.Errorf("%s: reload line %q, want log_level=DEBUG and %s", tc.daemon, line, tc.changed)
		}
		write(tc.bad)
		d.hup(t)
		d.waitFor(t, tc.daemon+" refusal", func() bool { return strings.Contains(d.stderr.String(), "configuration reload refused") })
		if code, _ := httpGet(t, "http://"+addr+"/-/healthy"); code != 200 {
			t.Errorf("%s: /-/healthy %d after a refused reload", tc.daemon, code)
		}
		d.alive(t)
	}
}
