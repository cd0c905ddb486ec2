package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// topLevel returns a YAML mapping's keys and their values as written.
func topLevel(t *testing.T, b []byte) (keys []string, values map[string]string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("not a YAML mapping (%v):\n%s", err, b)
	}
	m := doc.Content[0]
	values = map[string]string{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		keys = append(keys, m.Content[i].Value)
		v, _ := yaml.Marshal(m.Content[i+1])
		values[m.Content[i].Value] = strings.TrimSpace(string(v))
	}
	slices.Sort(keys)
	return keys, values
}

// TestExampleConfigs loads every example config of packaging/ through the
// real parser (--print-config), and checks that it names every setting
// the daemon has (a new flag without its example key fails here) with its
// default value, data_dir excepted.
func TestExampleConfigs(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/holdfast")
	for _, daemon := range []string{"collector", "registry", "producer"} {
		path := filepath.Join("..", "..", "packaging", "examples", daemon+".yml")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		exampleKeys, _ := topLevel(t, b)
		defKeys, defaults := topLevel(t, []byte(printed(t, daemon)))
		if !slices.Equal(exampleKeys, defKeys) {
			t.Errorf("%s: the example's keys\n%v\ndiffer from the settings\n%v", path, exampleKeys, defKeys)
		}
		_, loaded := topLevel(t, []byte(printed(t, daemon, "--config", path)))
		for k, v := range loaded {
			if v != defaults[k] && k != "data_dir" {
				t.Errorf("%s: %s is %s, the default is %s (the example says its values are the defaults)", path, k, v, defaults[k])
			}
		}
		if d, ok := loaded["data_dir"]; ok && daemon != "producer" && d != "/var/lib/holdfast/"+daemon {
			t.Errorf("%s: data_dir under systemd is %s, want /var/lib/holdfast/%s", path, d, daemon)
		}
	}
}

// TestMakeInstall runs `make install PREFIX=tmp` and checks what it put
// there: the binary (it runs), both units with their paths filled in and
// the hardening settings, the examples, and configs that a second install
// does not overwrite. The units pass `systemd-analyze verify` where it
// exists.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("make is missing")
		}
		t.Skip("no make")
	}
	prefix := t.TempDir()
	install := func() {
		t.Helper()
		cmd := exec.Command("make", "-C", filepath.Join("..", ".."), "install", "PREFIX="+prefix)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	bin := filepath.Join(prefix, "bin", "holdfast")
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), "holdfast, version") {
		t.Fatalf("installed binary: %v %s", err, out)
	}
	var units []string
	for _, d := range []string{"collector", "registry"} {
		unit := filepath.Join(prefix, "lib", "systemd", "system", "holdfast-"+d+".service")
		units = append(units, unit)
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"ExecStart=" + bin + " " + d + " --config " + filepath.Join(prefix, "etc", "holdfast", d+".yml"),
			"StateDirectory=holdfast", "ProtectSystem=strict", "ReadWritePaths=/var/lib/holdfast", "NoNewPrivileges=true",
			"Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"} {
			if !strings.Contains(s, want+"\n") {
				t.Errorf("%s: no %q", unit, want)
			}
		}
		if strings.Contains(s, "@") {
			t.Errorf("%s: a placeholder is left:\n%s", unit, s)
		}
		for _, f := range []string{filepath.Join(prefix, "etc", "holdfast", d+".yml"), filepath.Join(prefix, "share", "doc", "holdfast", "examples", d+".yml")} {
			if _, err := os.Stat(f); err != nil {
				t.Error(err)
			}
		}
	}
	mine := filepath.Join(prefix, "etc", "holdfast", "collector.yml")
	if err := os.WriteFile(mine, []byte("replicas_of_mine: edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	install()
	if b, _ := os.ReadFile(mine); string(b) != "replicas_of_mine: edited\n" {
		t.Fatalf("a second make install overwrote the edited config: %s", b)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}
