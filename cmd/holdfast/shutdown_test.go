package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCollectorDeregistersOnSIGTERM runs a registry whose collector leases
// last an hour, a producer and two collectors, all real processes. The
// producer is on collector A (B joined later; assignments are sticky).
// SIGTERM to A: A logs each step of its shutdown in order and exits 0,
// and B collects the producer, which only A's deregistration can have
// caused (no lease can have expired: the registry's expiry counter stays
// at 0). On a collector that does not deregister, B waits for the hour.
func TestCollectorDeregistersOnSIGTERM(t *testing.T) {
	_, raddr := startDaemon(t, registryUp, "registry", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--collector-lease", "1h", "--auth-token", "rt")
	reg := "http://" + raddr
	startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "50ms",
		"--registry", reg, "--registry-token", "rt", "--id", "p1")
	collector := func(id string) (*daemon, string) {
		return startDaemon(t, collectorUp, "collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1", "--drain-timeout", "1s",
			"--registry", reg, "--registry-token", "rt", "--refresh", "100ms", "--interval", "50ms", "--id", id)
	}
	a, aAdmin := collector("a")
	a.waitFor(t, "A collects the producer", func() bool { return collectorProducers(t, aAdmin)["p1"].Samples > 0 })
	b, bAdmin := collector("b")
	b.waitFor(t, "B registered", func() bool {
		_, body := httpGet(t, reg+"/v1/collectors")
		return strings.Contains(body, `"b"`)
	})
	if _, ok := collectorProducers(t, bAdmin)["p1"]; ok {
		t.Fatal("B collects the producer before A left")
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.done
	if a.exitErr != nil {
		t.Fatalf("A exited with %v:\n%s", a.exitErr, a.stderr.String())
	}
	b.waitFor(t, "B collects the producer after A's SIGTERM", func() bool { return collectorProducers(t, bAdmin)["p1"].Samples > 0 })
	_, metrics := httpGet(t, reg+"/metrics")
	if !strings.Contains(metrics, `holdfast_registry_leases_expired_total{kind="collector"} 0`) {
		t.Fatalf("a collector lease expired: the move was not the deregistration\n%s", metrics)
	}
	// A's log: every step, in order.
	log := a.stderr.String()
	at := 0
	for _, step := range []string{"shutdown: terminated received", "shutdown: stopping collection loops",
		"shutdown: collection loops stopped", "shutdown: deregistered from the registry", "shutdown: flushing the backlog",
		"shutdown: complete"} {
		i := strings.Index(log[at:], step)
		if i < 0 {
			t.Fatalf("no %q after the previous step in A's log:\n%s", step, log)
		}
		at += i
	}
}

// TestSecondSIGTERMExitsAtOnce: a collector flushing to an unreachable
// ClickHouse with an hour's --drain-timeout stops at the second SIGTERM
// (the drain can only end early that way), and the WAL it leaves opens
// again with its records.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	_, paddr := startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "50ms")
	data := t.TempDir()
	c, admin := startDaemon(t, collectorUp, "collector", "--listen", "127.0.0.1:0", "--data-dir", data, "--clickhouse", "127.0.0.1:1",
		"--drain-timeout", "1h", "--producer", "http://"+paddr, "--interval", "50ms")
	c.waitFor(t, "samples", func() bool { return collectorProducers(t, admin)["http://"+paddr].Samples > 0 })
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.waitFor(t, "the flush", func() bool { return strings.Contains(c.stderr.String(), "shutdown: flushing the backlog") })
	c.cmd.Process.Signal(syscall.SIGTERM)
	select { // the drain lasts an hour: only the second signal ends it now
	case <-c.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("still running 2 minutes after the second SIGTERM:\n%s", c.stderr.String())
	}
	if c.exitErr == nil {
		t.Fatal("exit 0 after a second SIGTERM: the drain was not cut")
	}
	if strings.Contains(c.stderr.String(), "shutdown: complete") {
		t.Fatalf("the drain ran to its end:\n%s", c.stderr.String())
	}
	code, out, stderr := runCmd("wal", "verify", data)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("wal verify after the second SIGTERM: exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestRegistryLogsItsShutdownSignal: the registry stops on SIGTERM as the
// collector does, saying why in its log, and exits 0. Before, it used
// signal.NotifyContext: nothing was logged and a second signal was
// swallowed until it exited.
func TestRegistryLogsItsShutdownSignal(t *testing.T) {
	reg, _ := startDaemon(t, registryUp, "registry", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	reg.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-reg.done:
	case <-time.After(time.Minute):
		t.Fatalf("registry still running a minute after SIGTERM:\n%s", reg.stderr.String())
	}
	if reg.exitErr != nil {
		t.Fatalf("registry exited with %v after SIGTERM:\n%s", reg.exitErr, reg.stderr.String())
	}
	if !strings.Contains(reg.stderr.String(), "shutdown: terminated received") {
		t.Fatalf("the registry's log does not say why it stopped:\n%s", reg.stderr.String())
	}
}
