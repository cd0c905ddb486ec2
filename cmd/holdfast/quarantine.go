package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

const quarantineUsage = `Usage:
  holdfast quarantine list   [--data-dir DIR | --admin ADDR] [--limit N]
  holdfast quarantine show   [--data-dir DIR | --admin ADDR] ID
  holdfast quarantine export [--data-dir DIR | --admin ADDR] [--out FILE] [--format entries|pages]
  holdfast quarantine replay [--data-dir DIR | --admin ADDR] [--force] [ID ...]
  holdfast quarantine delete [--data-dir DIR | --admin ADDR] ID ... | --code CODE

--data-dir reads a stopped collector's data directory; --admin (default
127.0.0.1:9464) a running collector's admin API (its state store is locked).
show prints an entry with its samples as JSON; export writes every entry as
one JSON line (samples in the page JSON form producers use), or with
--format pages one page JSON per entry (what a producer serves); replay
re-submits entries the current rules accept (all without IDs) to the WAL and
removes them, and keeps the others with an updated reason (with --data-dir
no schema registry is known, so entries refused for a schema conflict are
kept unless --force); delete removes entries for good (by id, or every
entry with a reason code such as too_large), the way to make room in a full
quarantine for entries that will never replay.
`

// qsource is where the quarantine is read: a data directory or an admin API.
type qsource interface {
	list(after uint64, limit int, samples bool) (collector.QuarantinePage, error)
	get(id uint64) (quarantine.View, error)
	replay(ids []uint64, force bool) (quarantine.ReplayReport, error)
	// delete removes entries, returning the ids it did not find.
	delete(ids []uint64) (notFound []uint64, err error)
	close()
}

func runQuarantine(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, quarantineUsage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("quarantine "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "a stopped collector's data directory")
	admin := fs.String("admin", "127.0.0.1:9464", "a running collector's admin address (when --data-dir is not given)")
	limit := fs.Int("limit", 0, "list: at most this many entries (0: all)")
	out := fs.String("out", "", "export: write here instead of standard output")
	format := fs.String("format", "entries", "export: entries (one JSON line per entry, with reason and samples) or pages (one page JSON per entry with samples, the form producers serve)")
	force := fs.Bool("force", false, "replay --data-dir: also replay entries refused for a schema conflict (no schema registry is known offline)")
	code := fs.String("code", "", "delete: every entry with this reason code (invalid, schema, too_large, rejected, malformed, corrupt, unknown_type, key_collision)")
	var limits sampleLimits
	fs.Var(&limits, "sample-limits", "replay --data-dir: the limits to check against (as the collector's flag)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return 2
	}
	if (cmd == "list" || cmd == "export") && len(pos) != 0 {
		// Not ignored: `list DIR` once read a running collector's
		// quarantine at --admin's default instead of DIR's.
		fmt.Fprintf(stderr, "holdfast quarantine %s: unexpected argument %q (a stopped collector's directory is --data-dir DIR)\n", cmd, pos[0])
		return 2
	}
	var src qsource
	if *dataDir != "" {
		src, err = openDirSource(*dataDir, limits.Limits)
	} else {
		src = &adminSource{addr: *admin, http: &http.Client{Timeout: 6 * time.Minute}}
	}
	if err != nil {
		fmt.Fprintf(stderr, "holdfast quarantine: %v\n", err)
		return 1
	}
	defer src.close()
	switch cmd {
	case "list":
		err = quarantineList(src, *limit, stdout)
	case "show":
		if len(pos) != 1 {
			fmt.Fprint(stderr, quarantineUsage)
			return 2
		}
		var id uint64
		if id, err = strconv.ParseUint(pos[0], 10, 64); err != nil {
			fmt.Fprintf(stderr, "holdfast quarantine show: %q is not an entry id\n", pos[0])
			return 2
		}
		var v quarantine.View
		if v, err = src.get(id); err == nil {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(v)
		}
	case "export":
		w := stdout
		if *out != "" {
			f, ferr := os.Create(*out)
			if ferr != nil {
				fmt.Fprintf(stderr, "holdfast quarantine export: %v\n", ferr)
				return 1
			}
			defer f.Close()
			w = f
		}
		var n int
		if *format != "entries" && *format != "pages" {
			fmt.Fprintf(stderr, "holdfast quarantine export: --format is entries or pages, not %q\n", *format)
			return 2
		}
		n, err = quarantineExport(src, w, *format == "pages")
		if err == nil && *out != "" {
			fmt.Fprintf(stdout, "exported %d entries to %s\n", n, *out)
		}
	case "replay":
		ids, ok := parseEntryIDs("replay", pos, stderr)
		if !ok {
			return 2
		}
		var rep quarantine.ReplayReport
		rep, err = src.replay(ids, *force)
		fmt.Fprintf(stdout, "replayed %d entries (%d samples) into the WAL; %d still refused (reason updated); %d hold no data", rep.Replayed, rep.Samples, rep.StillRefused, rep.NotReplayable)
		if rep.SchemaKept > 0 {
			fmt.Fprintf(stdout, "; %d schema conflicts kept (no schema registry offline: replay through --admin, or --force)", rep.SchemaKept)
		}
		if len(rep.NotFound) > 0 {
			fmt.Fprintf(stdout, "; not found: %v", rep.NotFound)
		}
		fmt.Fprintln(stdout)
	case "delete":
		ids, ok := parseEntryIDs("delete", pos, stderr)
		if !ok {
			return 2
		}
		if (len(ids) == 0) == (*code == "") {
			fmt.Fprintf(stderr, "holdfast quarantine delete: give entry ids or --code, not both\n\n%s", quarantineUsage)
			return 2
		}
		if *code != "" {
			if ids, err = quarantineIDsWithCode(src, *code); err != nil {
				break
			}
		}
		var notFound []uint64
		notFound, err = src.delete(ids)
		fmt.Fprintf(stdout, "deleted %d entries", len(ids)-len(notFound))
		if len(notFound) > 0 {
			fmt.Fprintf(stdout, "; not found: %v", notFound)
		}
		fmt.Fprintln(stdout)
	default:
		fmt.Fprintf(stderr, "holdfast quarantine: unknown command %q\n\n%s", cmd, quarantineUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "holdfast quarantine %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// parseInterleaved parses flags that may come after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func quarantineList(src qsource, limit int, w io.Writer) error {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	var after uint64
	n := 0
	for {
		page, err := src.list(after, 1000, false)
		if err != nil {
			return err
		}
		if after == 0 {
			st := page.Stats
			full := ""
			if st.Full {
				full = ", FULL"
			}
			size := fmt.Sprintf("%d of %d bytes", st.Bytes, st.BudgetBytes)
			if st.BudgetBytes == 0 { // a data directory: the bound is the collector's flag
				size = fmt.Sprintf("%d bytes", st.Bytes)
			}
			fmt.Fprintf(bw, "# %d entries (%d samples, %d records), %s%s; %d not kept for lack of room since the collector started\n",
				st.Entries, st.Samples, st.Records, size, full, st.Overflow)
			fmt.Fprintln(bw, "ID\tKIND\tTIME\tPRODUCER\tREASON_CODE\tREASON")
		}
		for _, e := range page.Entries {
			if limit > 0 && n == limit {
				return nil
			}
			fmt.Fprintf(bw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Kind, e.Time.Format(time.RFC3339Nano), e.Producer, e.ReasonCode, e.Reason)
			n++
		}
		if page.Next == 0 {
			return nil
		}
		after = page.Next
	}
}

// quarantineIDsWithCode lists the ids of every entry with a reason code.
func quarantineIDsWithCode(src qsource, code string) ([]uint64, error) {
	var ids []uint64
	var after uint64
	for {
		page, err := src.list(after, 1000, false)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Entries {
			if e.ReasonCode == code {
				ids = append(ids, e.ID)
			}
		}
		if page.Next == 0 {
			return ids, nil
		}
		after = page.Next
	}
}

// pageJSON is an exported entry in the page JSON form (producerapi/json.go);
// the token names the entry, as a page with samples must have one.
type pageJSON struct {
	Version     int               `json:"version"`
	Producer    string            `json:"producer"`
	Incarnation string            `json:"incarnation"`
	Token       string            `json:"token"`
	Dropped     uint64            `json:"dropped"`
	More        bool              `json:"more"`
	Samples     []json.RawMessage `json:"samples"`
}

func quarantineExport(src qsource, w io.Writer, pages bool) (int, error) {
	bw := bufio.NewWriter(w)
	var after uint64
	n := 0
	for {
		page, err := src.list(after, 100, true)
		if err != nil {
			return n, err
		}
		for _, e := range page.Entries {
			var v any = e
			if pages {
				if len(e.Samples) == 0 {
					continue // nothing to recover (no data, or undecodable: see the entries format)
				}
				v = pageJSON{Version: pa.PageVersion, Producer: e.Producer, Incarnation: e.Incarnation,
					Token: fmt.Sprintf("quarantine-%d", e.ID), Samples: e.Samples}
			}
			b, err := json.Marshal(v)
			if err != nil {
				return n, err
			}
			bw.Write(b)
			bw.WriteByte('\n')
			n++
		}
		if page.Next == 0 {
			return n, bw.Flush()
		}
		after = page.Next
	}
}

// dirSource reads a stopped collector's data directory.
type dirSource struct {
	dir    string
	db     *pebble.DB
	q      *quarantine.Store
	limits pa.Limits
}

func openDirSource(dir string, limits pa.Limits) (*dirSource, error) {
	sd := filepath.Join(dir, "state")
	if _, err := os.Stat(sd); err != nil {
		return nil, fmt.Errorf("%s is not a collector data directory: %w", dir, err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := state.Open(sd, log)
	if err != nil {
		return nil, fmt.Errorf("%w (is a collector running on it? then use --admin)", err)
	}
	q, err := quarantine.Open(db, quarantine.Options{BudgetBytes: -1, Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &dirSource{dir: dir, db: db, q: q, limits: limits}, nil
}

func (d *dirSource) close() { d.q.Close(); d.db.Close() }

func (d *dirSource) list(after uint64, limit int, samples bool) (collector.QuarantinePage, error) {
	var es []quarantine.Entry
	var more bool
	var err error
	if samples {
		es, more, err = d.q.ListUpTo(after, limit, 16<<20)
	} else {
		es, more, err = d.q.ListHeaders(after, limit)
	}
	page := collector.QuarantinePage{Stats: d.q.Stats()}
	page.Stats.BudgetBytes = 0 // the bound is the collector's flag, not stored
	for i := range es {
		page.Entries = append(page.Entries, quarantine.ViewOf(&es[i], samples))
	}
	if more {
		page.Next = es[len(es)-1].ID
	}
	return page, err
}

func (d *dirSource) get(id uint64) (quarantine.View, error) {
	e, err := d.q.Get(id)
	if err != nil {
		return quarantine.View{}, err
	}
	return quarantine.ViewOf(&e, true), nil
}

// replay appends to the data directory's WAL; the collector forwards it at
// its next start. Only limits are checked: no schemas are known offline, so
// entries refused for a schema conflict stay unless force.
func (d *dirSource) replay(ids []uint64, force bool) (quarantine.ReplayReport, error) {
	l, err := wal.Open(filepath.Join(d.dir, "wal"), wal.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return quarantine.ReplayReport{}, err
	}
	defer l.Close()
	return quarantine.Replay(context.Background(), d.q, quarantine.ReplayOptions{IDs: ids, Limits: d.limits, Append: l.Append,
		KeepSchemaConflicts: !force})
}

func (d *dirSource) delete(ids []uint64) ([]uint64, error) {
	var found, notFound []uint64
	for _, id := range ids {
		if _, err := d.q.Get(id); errors.Is(err, quarantine.ErrNotFound) {
			notFound = append(notFound, id)
			continue
		} else if err != nil && !errors.Is(err, quarantine.ErrMalformed) {
			return nil, err
		}
		found = append(found, id)
	}
	return notFound, d.q.Delete(found)
}

// adminSource reads a running collector through its admin API.
type adminSource struct {
	addr string
	http *http.Client
}

func (a *adminSource) close() {}

func (a *adminSource) call(method, path string, v any) error {
	u := a.addr
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = "http://" + u
	}
	req, err := http.NewRequest(method, u+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		msg := string(bytes.TrimSpace(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return statusError{code: resp.StatusCode, msg: msg}
	}
	return json.Unmarshal(body, v)
}

func (a *adminSource) list(after uint64, limit int, samples bool) (collector.QuarantinePage, error) {
	var page collector.QuarantinePage
	path := fmt.Sprintf("/v1/quarantine?after=%d&limit=%d", after, limit)
	if samples {
		path += "&samples=1"
	}
	err := a.call(http.MethodGet, path, &page)
	return page, err
}

func (a *adminSource) get(id uint64) (quarantine.View, error) {
	var v quarantine.View
	err := a.call(http.MethodGet, fmt.Sprintf("/v1/quarantine/%d", id), &v)
	return v, err
}

func (a *adminSource) delete(ids []uint64) ([]uint64, error) {
	var notFound []uint64
	for _, id := range ids {
		var out struct{}
		err := a.call(http.MethodDelete, fmt.Sprintf("/v1/quarantine/%d", id), &out)
		var se statusError
		if errors.As(err, &se) && se.code == http.StatusNotFound {
			notFound = append(notFound, id)
			continue
		}
		if err != nil {
			return notFound, fmt.Errorf("entry %d: %w", id, err)
		}
	}
	return notFound, nil
}

// The running collector checks schemas itself: force changes nothing there.
func (a *adminSource) replay(ids []uint64, _ bool) (quarantine.ReplayReport, error) {
	var rep quarantine.ReplayReport
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "id=" + strconv.FormatUint(id, 10)
	}
	path := "/v1/quarantine/replay"
	if len(q) > 0 {
		path += "?" + strings.Join(q, "&")
	}
	err := a.call(http.MethodPost, path, &rep)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (the replay may still be running in the collector)", err)
	}
	return rep, err
}

// statusError is an admin API answer other than 200.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return fmt.Sprintf("collector answered %d: %s", e.code, e.msg) }

// sampleLimits is a flag value: comma-separated name=value pairs setting
// producerapi.Limits (sizes accept KiB/MiB suffixes).
type sampleLimits struct{ pa.Limits }

func (l *sampleLimits) String() string {
	return fmt.Sprintf("name_len=%d,fields=%d,field_string=%d,datum_bytes=%d,histogram_bins=%d",
		l.MaxNameLen, l.MaxFields, l.MaxFieldStringLen, l.MaxDatumBytes, l.MaxHistogramBins)
}

func (l *sampleLimits) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		n, err := parseBytes(v)
		if !ok || err != nil || n <= 0 || n > 1<<30 {
			return fmt.Errorf("%q: want name=positive number", kv)
		}
		switch k {
		case "name_len":
			l.MaxNameLen = int(n)
		case "fields":
			l.MaxFields = int(n)
		case "field_string":
			l.MaxFieldStringLen = int(n)
		case "datum_bytes":
			l.MaxDatumBytes = int(n)
		case "histogram_bins":
			l.MaxHistogramBins = int(n)
		default:
			return fmt.Errorf("unknown limit %q (name_len, fields, field_string, datum_bytes, histogram_bins)", k)
		}
	}
	return nil
}

// parseEntryIDs reads the entry ids given to a quarantine verb; it reports
// the first one that is not an id on stderr.
func parseEntryIDs(verb string, args []string, stderr io.Writer) ([]uint64, bool) {
	var ids []uint64
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			fmt.Fprintf(stderr, "holdfast quarantine %s: %q is not an entry id\n", verb, a)
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}
