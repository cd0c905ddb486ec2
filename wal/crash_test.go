package wal_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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
	say := childSay()
	appendForever(l, round, func(idx uint64, writer, seq int) {
		say("%d %d %d\n", idx, writer, seq)
	})
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
		c := startChild(t, "TestCrashChild", crashChildEnv, fmt.Sprintf("%s|%d", dir, round))
		// Let it get going (first ack), then kill it at a random moment.
		first, ok := <-c.lines
		if !ok {
			c.cmd.Wait()
			t.Fatalf("round %d: child wrote nothing; stderr: %s", round, c.stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		all := append([]string{first}, c.kill(t)...)
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
