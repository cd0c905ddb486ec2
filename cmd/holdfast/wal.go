package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

func runWAL(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "holdfast wal: want verify or dump\n")
		return 2
	}
	switch args[0] {
	case "verify":
		return walVerify(args[1:], stdout, stderr)
	case "dump":
		return walDump(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "holdfast wal: unknown command %q (want verify or dump)\n", args[0])
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
	rep, err := wal.Verify(dir)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast wal verify: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%-22s %12s %10s %12s  %s\n", "SEGMENT", "FIRST_INDEX", "RECORDS", "BYTES", "STATUS")
	for _, s := range rep.Segments {
		status := "ok"
		if s.Err != nil {
			var ce *wal.CorruptionError
			if errors.As(s.Err, &ce) {
				status = fmt.Sprintf("CORRUPT at offset %d (index %d): %v", ce.Offset, ce.Index, ce.Err)
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
		fmt.Fprintln(stdout, "A torn or damaged tail of the LAST segment is repaired when the collector opens the WAL (a copy is kept as *.broken.*); damage elsewhere stops the collector and needs an operator.")
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
	if err := pa.DecodePageRecord(rec.Payload, page); err != nil {
		return "UNDECODABLE: " + err.Error()
	}
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
