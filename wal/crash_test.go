package wal_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/wal"
)

const crashChildEnv = "HOLDFAST_WAL_CRASH_CHILD"

// crashPayload is the record a child writes for (round, writer, seq): its
// size varies so kills land inside records of many lengths.
func crashPayload(round, writer, seq int) []byte {
	n := 20 + (round*7919+writer*104729+seq*31)%3000
	p := bytes.Repeat([]byte{byte(seq)}, n)
	copy(p, fmt.Sprintf("%d/%d/%d;", round, writer, seq))
	return p
}

// TestCrashChild is the child side of TestSIGKILLLosesNothingAcknowledged; it
// does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		return
	}
	dir, roundStr, _ := strings.Cut(spec, "|")
	round, _ := strconv.Atoi(roundStr)
	l, err := wal.Open(dir, wal.Options{SegmentSize: 64 << 10})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child open: %v\n", err)
		os.Exit(3)
	}
	var out sync.Mutex
	w := bufio.NewWriter(os.Stdout)
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
				// Only now is the record acknowledged.
				out.Lock()
				fmt.Fprintf(w, "%d %d %d\n", idx, writer, seq)
				w.Flush()
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

type ack struct{ round, writer, seq int }

func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	rounds := 50
	if testing.Short() {
		rounds = 15
	}
	dir := t.TempDir()
	acked := map[uint64]ack{}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	repairs := 0
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d", crashChildEnv, dir, round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it get going (first ack), then kill it at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child wrote nothing; stderr: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		all := []string{first}
		for line := range lines {
			all = append(all, line)
		}
		cmd.Wait()
		for _, line := range all {
			var idx uint64
			var w, s int
			if _, err := fmt.Sscanf(line, "%d %d %d", &idx, &w, &s); err != nil {
				continue // a line cut by the kill is not an acknowledgement
			}
			if prev, dup := acked[idx]; dup {
				t.Fatalf("round %d: index %d acknowledged twice (%v, now %d/%d/%d)", round, idx, prev, round, w, s)
			}
			acked[idx] = ack{round, w, s}
		}
		l, err := wal.Open(dir, wal.Options{SegmentSize: 64 << 10})
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		if l.Repair() != nil {
			repairs++
		}
		r := l.NewReader(1)
		for {
			idx, rec, ok, err := r.Next()
			if err != nil {
				t.Fatalf("round %d: reading %d: %v", round, r.Position(), err)
			}
			if !ok {
				break
			}
			if a, was := acked[idx]; was && !bytes.Equal(rec.Payload, crashPayload(a.round, a.writer, a.seq)) {
				t.Fatalf("round %d: index %d holds %.30q, acknowledged %v", round, idx, rec.Payload, a)
			}
		}
		last := l.Stats().LastIndex
		for idx, a := range acked {
			if idx > last {
				t.Fatalf("round %d: acknowledged index %d (%v) is gone; log ends at %d", round, idx, a, last)
			}
		}
		l.Close()
	}
	t.Logf("%d rounds, %d acknowledged records verified, %d opens repaired a torn tail", rounds, len(acked), repairs)
	if len(acked) < rounds {
		t.Fatalf("only %d acknowledgements in %d rounds: the test did not exercise the log", len(acked), rounds)
	}
}
