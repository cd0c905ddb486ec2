package wal_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// child is this test binary re-run as a crash test's child process (a
// Test*Child function selected by -test.run and told what to do by one
// environment variable), with its stdout read line by line so the parent
// sees acknowledgements as they are made and can kill it in the middle.
type child struct {
	cmd    *exec.Cmd
	lines  chan string // the child's stdout lines; closed at its end
	stderr bytes.Buffer
}

// startChild starts the test named test in a child process with env=value.
func startChild(t *testing.T, test, env, value string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")}
	c.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s", env, value))
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Buffered well past what a child writes before it is killed, so the
	// reader never holds the child back.
	c.lines = make(chan string, 1<<16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// kill SIGKILLs the child and returns the lines it wrote that were not read
// yet, once it is gone.
func (c *child) kill(t *testing.T) []string {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for line := range c.lines {
		rest = append(rest, line)
	}
	c.cmd.Wait()
	return rest
}

// childSay returns the child side's printer: each call writes one whole
// line (or lines) to stdout and flushes it, so the parent, which may kill
// the child at any moment, never sees two writers' lines interleaved.
func childSay() func(format string, args ...any) {
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format, args...)
		w.Flush()
	}
}

// appendForever appends crashPayload records from eight writers until the
// child is killed, calling acked after each Append has returned: only then
// is the record acknowledged. A failed Append ends the child with status 4.
func appendForever(l *wal.Log, round int, acked func(idx uint64, writer, seq int)) {
	var wg sync.WaitGroup
	for writer := 0; writer < 8; writer++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: crashPayload(round, writer, seq)})
				if err != nil {
					fmt.Fprintf(os.Stderr, "child append: %v\n", err)
					os.Exit(4)
				}
				acked(idx, writer, seq)
			}
		}()
	}
	wg.Wait()
}
