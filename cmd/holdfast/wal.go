package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

func runWAL(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "holdfast wal: want verify, dump or repair\n")
		return 2
	}
	switch args[0] {
	case "verify":
		return walVerify(args[1:], stdout, stderr)
	case "dump":
		return walDump(args[1:], stdout, stderr)
	case "repair":
		return walRepair(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "holdfast wal: unknown command %q (want verify, dump or repair)\n", args[0])
	return 2
}

// parseDirAndFlags accepts the directory before or after the flags.
func parseDirAndFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (string, bool) {
	var dir string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if dir == "" && fs.NArg() == 1 {
		dir = fs.Arg(0)
	} else if fs.NArg() != 0 || dir == "" {
		fmt.Fprintf(stderr, "holdfast wal %s: want exactly one WAL directory\n", fs.Name())
		return "", false
	}
	return dir, true
}

func walVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir, ok := parseDirAndFlags(fs, args, stderr)
	if !ok {
		return 2
	}
	walDir, stateDir, err := locateWAL(dir)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast wal verify: %v\n", err)
		return 1
	}
	rep, err := wal.Verify(walDir)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast wal verify: %v\n", err)
		return 1
	}
	if len(rep.Segments) == 0 {
		// locateWAL saw segment files; they vanished since (a collector
		// deleting them): never call an empty listing OK.
		fmt.Fprintf(stderr, "holdfast wal verify: %s: no WAL segment files\n", walDir)
		return 1
	}
	if stateDir != "" {
		ckpt, err := readCheckpoint(stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "holdfast wal verify: reading the checkpoint in %s: %v\n", stateDir, err)
			return 1
		}
		fmt.Fprintf(stdout, "checkpoint (from %s): %d\n", stateDir, ckpt)
		if err := rep.CheckCheckpoint(ckpt); err != nil {
			rep.Problems = append([]error{err}, rep.Problems...)
		}
	}
	dir = walDir
	fmt.Fprintf(stdout, "%-22s %12s %10s %12s  %s\n", "SEGMENT", "FIRST_INDEX", "RECORDS", "BYTES", "STATUS")
	for _, s := range rep.Segments {
		status := "ok"
		if s.Err != nil {
			var ce *wal.CorruptionError
			if errors.As(s.Err, &ce) {
				status = fmt.Sprintf("CORRUPT at offset %d (index %d): %v", ce.Offset, ce.Index, ce.Err)
				if ce.NextValidOffset > 0 {
					status += fmt.Sprintf("; valid frames follow at offset %d: fix with `holdfast wal repair --skip %d %s`", ce.NextValidOffset, ce.Index, dir)
				}
			} else {
				status = s.Err.Error()
			}
		}
		fmt.Fprintf(stdout, "%-22s %12d %10d %12d  %s\n", s.Name, s.FirstIndex, s.Records, s.Bytes, status)
	}
	if rep.Records == 0 {
		fmt.Fprintf(stdout, "\n%s: no records, %d segment(s), %d bytes\n", dir, len(rep.Segments), rep.Bytes)
	} else {
		fmt.Fprintf(stdout, "\n%s: indexes %d..%d, %d records, %d bytes in %d segment(s)\n",
			dir, rep.FirstIndex, rep.LastIndex, rep.Records, rep.Bytes, len(rep.Segments))
	}
	if !rep.OK() {
		fmt.Fprintf(stdout, "%d problem(s):\n", len(rep.Problems))
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "  %v\n", p)
		}
		fmt.Fprintln(stdout, "A torn or zero-filled END of the LAST segment is repaired when the collector opens the WAL (a copy is kept as *.broken.*).")
		fmt.Fprintln(stdout, "A bad record with valid records after it (any segment) stops the collector: stop it, then run `holdfast wal repair --skip INDEX WALDIR`,")
		fmt.Fprintln(stdout, "which replaces exactly that record with a placeholder (quarantined by the forwarder) and keeps every record after it at its index.")
		fmt.Fprintln(stdout, "Missing records (a gap after the checkpoint) cannot be repaired: restore the segment file, or accept the loss explicitly (see README, \"WAL repair\").")
		return 1
	}
	fmt.Fprintln(stdout, "OK")
	return 0
}

func walDump(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.Uint64("from", 0, "first index to print")
	to := fs.Uint64("to", 0, "last index to print (0: to the end)")
	dir, ok := parseDirAndFlags(fs, args, stderr)
	if !ok {
		return 2
	}
	if *to != 0 && *to < *from {
		fmt.Fprintf(stderr, "holdfast wal dump: --to %d is before --from %d\n", *to, *from)
		return 2
	}
	var page pa.PageRecord
	n := 0
	err := wal.Dump(dir, *from, *to, func(e wal.DumpEntry) error {
		n++
		fmt.Fprintf(stdout, "%d\t%s+%d\t%dB\t%s\t%s\n", e.Index, e.Segment, e.Offset, e.Size, e.Record.Type, summarize(e.Record, &page))
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "holdfast wal dump: %v\n", err)
		return 1
	}
	if n == 0 {
		fmt.Fprintln(stderr, "holdfast wal dump: no records in that range")
	}
	return 0
}

// summarize describes a record's payload in one line.
func summarize(rec wal.Record, page *pa.PageRecord) string {
	if rec.Type != wal.TypePage {
		return fmt.Sprintf("%d payload bytes", len(rec.Payload))
	}
	if len(rec.Payload) > 0 && rec.Payload[0] == 3 {
		return summarize3(rec.Payload, page)
	}
	if err := pa.DecodePageRecord(rec.Payload, page); err != nil {
		return "UNDECODABLE: " + err.Error()
	}
	return summarizeSamples(page)
}

// summarize3 describes a version 3 record: its session, the ids it
// defines, and its samples when it reads on its own (its samples name
// only ids it defines); otherwise the samples' session ids, whose
// definitions are in earlier records (or the forwarder's state store).
func summarize3(payload []byte, page *pa.PageRecord) string {
	var h pa.Record3Head
	if err := pa.ParsePageRecord3(payload, &h); err != nil {
		return "UNDECODABLE: " + err.Error()
	}
	var sc pa.BlockScanner
	if err := sc.Reset3(h.Block, nil); err != nil {
		return "UNDECODABLE: " + err.Error()
	}
	head := fmt.Sprintf("session=%016x defs=%d", h.Session, sc.NumSeries())
	if sc.NumSeries() > 0 {
		head += fmt.Sprintf(" (ids %d..%d)", sc.FirstID(), sc.FirstID()+uint64(sc.NumSeries())-1)
	}
	if len(h.Refused) > 0 {
		head += fmt.Sprintf(" refused=%d", len(h.Refused))
	}
	if pa.DecodePageRecord(payload, page) == nil {
		return summarizeSamples(page) + " " + head
	}
	// Sample ids, read as far as this record's own definitions allow.
	ids := fmt.Sprintf("samples=%d ids", sc.NumSamples())
	sc.SetSessionTypes(sc.AppendSessionTypes(nil))
	var v pa.SampleView
	shown := 0
	for shown < 8 {
		off := sc.Offset()
		if !sc.Next(&v) {
			if sc.Err() != nil {
				if id, n := binary.Uvarint(h.Block[min(off, len(h.Block)):]); n > 0 {
					ids += fmt.Sprintf(" %d (defined earlier in the session; the rest not read)", id)
				}
			}
			break
		}
		ids += fmt.Sprintf(" %d", v.Series)
		shown++
	}
	if shown == 8 {
		ids += " ..."
	}
	return fmt.Sprintf("producer=%q incarnation=%q %s %s", h.Producer, h.Incarnation, ids, head)
}

// summarizeSamples describes a decoded page record.
func summarizeSamples(page *pa.PageRecord) string {
	s := page.Samples
	if len(s) == 0 {
		return fmt.Sprintf("producer=%q incarnation=%q samples=0", page.Producer, page.Incarnation)
	}
	lo, hi := s[0].TimestampNs, s[0].TimestampNs
	names := map[string]struct{}{}
	for i := range s {
		lo, hi = min(lo, s[i].TimestampNs), max(hi, s[i].TimestampNs)
		names[s[i].TimeseriesName()] = struct{}{}
	}
	return fmt.Sprintf("producer=%q incarnation=%q samples=%d timeseries_names=%d first=%s time=%s..%s",
		page.Producer, page.Incarnation, len(s), len(names), s[0].TimeseriesName(),
		time.Unix(0, lo).UTC().Format(time.RFC3339Nano), time.Unix(0, hi).UTC().Format(time.RFC3339Nano))
}

// resolveDataDir accepts a collector data directory (holding wal/ and
// state/) or a WAL directory. For a data directory it returns the WAL
// directory and the state directory; for a WAL directory the state is "".
func resolveDataDir(dir string) (walDir, stateDir string) {
	w, st := filepath.Join(dir, "wal"), filepath.Join(dir, "state")
	if fi, err := os.Stat(w); err == nil && fi.IsDir() {
		if fi, err := os.Stat(st); err == nil && fi.IsDir() {
			return w, st
		}
		return w, ""
	}
	return dir, ""
}

// readCheckpoint reads the forwarder's checkpoint from a state store without
// changing it. Pebble locks its directory even read-only, so when a running
// collector holds it the store is copied to a temporary directory first
// (best effort: a checkpoint being written at that moment may be older).
func readCheckpoint(stateDir string) (uint64, error) {
	open := func(dir string) (uint64, error) {
		db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: quietPebble{}})
		if err != nil {
			return 0, err
		}
		defer db.Close()
		return forwarder.LoadCheckpoint(db)
	}
	ckpt, err := open(stateDir)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return ckpt, err
	}
	// Most likely the lock (EAGAIN): read a copy instead.
	tmp, terr := os.MkdirTemp("", "holdfast-state-")
	if terr != nil {
		return 0, errors.Join(err, terr)
	}
	defer os.RemoveAll(tmp)
	entries, terr := os.ReadDir(stateDir)
	if terr != nil {
		return 0, terr
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		if err := copyFile(filepath.Join(stateDir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return 0, err
		}
	}
	ckpt, cerr := open(tmp)
	if cerr != nil {
		return 0, fmt.Errorf("%w (and reading a copy: %v)", err, cerr)
	}
	return ckpt, nil
}

// copyFile streams a file: Pebble's files can be large.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)         {}
func (quietPebble) Errorf(string, ...any)        {}
func (quietPebble) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

func walRepair(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("repair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	skip := fs.Uint64("skip", 0, "index of the damaged record to replace with a placeholder (as `holdfast wal verify` reports it)")
	records := fs.Int("records", 0, "how many records the damaged region held, when it cannot be worked out (0: work it out)")
	force := fs.Bool("force", false, "accept a --records count that cannot be checked in the last segment (no DATADIR, or the checkpoint is at or after the damage)")
	dir, ok := parseDirAndFlags(fs, args, stderr)
	if !ok {
		return 2
	}
	if *skip == 0 {
		fmt.Fprintln(stderr, "holdfast wal repair: --skip INDEX is required (the index `holdfast wal verify` reports)")
		return 2
	}
	walDir, stateDir := resolveDataDir(dir)
	opts := wal.SkipOptions{Records: *records, Force: *force}
	if stateDir != "" {
		ckpt, err := readCheckpoint(stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "holdfast wal repair: reading the checkpoint in %s: %v\n", stateDir, err)
			return 1
		}
		opts.Checkpoint, opts.HaveCheckpoint = ckpt, true
	}
	rep, err := wal.SkipDamaged(walDir, *skip, opts)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast wal repair: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "replaced %d damaged record(s) from index %d (%d bytes at %s offset %d) with placeholders; %d records in the segment check now\noriginal segment kept in %s\n",
		rep.Records, rep.FirstIndex, rep.Bytes, rep.Segment, rep.Offset, rep.KeptRecords, rep.Evidence)
	return 0
}
