package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

const pageSamples = 1000

// freshDB creates a database with the schema and returns it with a function
// that drops it.
func freshDB(ctx context.Context, conn driver.Conn, prefix string) (string, func(), error) {
	db := fmt.Sprintf("bench_%s_%d", prefix, rand.Uint32())
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := forwarder.EnsureSchema(sctx, conn, db); err != nil {
		return "", nil, err
	}
	return db, func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) }, nil
}

// fillWAL appends n fleet samples in pages of pageSamples, as page
// records of version recordVersion(): 3 (a series session per producer of
// 10,000 VMs, as collectors write them from producers speaking page v3),
// 2 (block v2, flagged verified), or 1 as builds before block v2 wrote
// them.
func fillWAL(l *wal.Log, n, vms int, ts int64) error {
	return newWALFiller(vms).fill(l, n, ts)
}

// walFiller appends a fleet's pages to a WAL call after call, as one
// collector would: the fleet's periods go on and the producers' series
// sessions continue (a version 3 backlog defines each series once).
type walFiller struct {
	fleet    *sampletest.Fleet
	sessions *sessionRecords
	version  int
	page     []pa.Sample
	buf      []byte
	block    []byte
	enc      pa.Block2Encoder
	pages    int
}

func newWALFiller(vms int) *walFiller {
	fleet := sampletest.NewFleet(vms)
	return &walFiller{fleet: fleet, version: recordVersion(), page: make([]pa.Sample, 0, pageSamples),
		sessions: newSessionRecords(vms, fleet.Measurements, pageSamples)}
}

// fill appends n samples, in pages of pageSamples, timestamps from ts.
func (w *walFiller) fill(l *wal.Log, n int, ts int64) error {
	for done := 0; done < n; done += pageSamples {
		w.page = w.fleet.Append(w.page[:0], min(pageSamples, n-done), ts+int64(done))
		switch w.version {
		case 3:
			w.buf = w.sessions.record(w.buf[:0], w.pages, w.page)
		case 1:
			w.buf = pa.AppendPageRecord(w.buf[:0], "bench", "1", w.page)
		default:
			w.block = w.enc.Append(w.block[:0], w.page)
			w.buf = pa.AppendPageRecord2(w.buf[:0], "bench", "1", true, w.block)
		}
		w.pages++
		if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: w.buf}); err != nil {
			return err
		}
	}
	return nil
}

// recordVersion is the page record version the benchmarks write to the
// WAL: HOLDFAST_BENCH_RECORD_VERSION, default 3 (what collectors write for
// library producers).
func recordVersion() int {
	switch os.Getenv("HOLDFAST_BENCH_RECORD_VERSION") {
	case "1":
		return 1
	case "2":
		return 2
	}
	return 3
}

// drainDir forwards everything in dir's WAL into db and returns the time it
// took; onTick, if set, runs every 50 ms during the drain.
func drainDir(ctx context.Context, addr, db, dir string, opts forwarder.Options, onTick func()) (time.Duration, error) {
	l, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	st, err := state.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	opts.Addr, opts.Database, opts.SessionDir = addr, db, filepath.Join(dir, "sessions")
	f, err := forwarder.New(l, st, opts)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(rctx) }()
	stopTick := make(chan struct{})
	if onTick != nil {
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopTick:
					return
				case <-t.C:
					onTick()
				}
			}
		}()
	}
	fctx, fcancel := context.WithTimeout(rctx, 30*time.Minute)
	err = f.Flush(fctx)
	fcancel()
	took := time.Since(start)
	close(stopTick)
	cancel()
	if rerr := <-done; rerr != nil {
		return 0, rerr
	}
	return took, err
}

// drainVsDirect measures, for n samples of a 10,000-VM fleet, the forwarder's
// drain of a pre-filled WAL and direct columnar inserts of the same rows in
// the same batch size. It returns both rates in samples per second.
func drainVsDirect(ctx context.Context, conn driver.Conn, addr, dir string, n, batchRows int, ts int64) (drain, direct float64, err error) {
	l, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
	if err != nil {
		return 0, 0, err
	}
	err = fillWAL(l, n, 10_000, ts)
	l.Close()
	if err != nil {
		return 0, 0, err
	}
	db, drop, err := freshDB(ctx, conn, "drain")
	if err != nil {
		return 0, 0, err
	}
	defer drop()
	took, err := drainDir(ctx, addr, db, dir, forwarder.Options{BatchRows: batchRows}, nil)
	if err != nil {
		return 0, 0, err
	}
	drain = float64(n) / took.Seconds()

	db2, drop2, err := freshDB(ctx, conn, "direct")
	if err != nil {
		return 0, 0, err
	}
	defer drop2()
	direct, err = timedInserts(ctx, forwarder.NewInserter(conn, db2), sampletest.NewFleet(10_000), n, batchRows, ts)
	runtime.GC()
	return drain, direct, err
}

// RunInsert compares the forwarder's drain of a pre-filled WAL with direct
// clickhouse-go inserts of the same rows, across batch sizes, alternating.
func RunInsert(ctx context.Context, env Env) (*Result, error) {
	conn, err := forwarder.Dial(env.ClickHouse, "default", "", 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r := newResult("insert")
	r.Machine.ClickHouse = serverVersion(ctx, conn)
	batchSizes := []int{10_000, 100_000}
	const rounds = 2
	// About 4 runs per batch size per round at ~400k samples/s.
	n := int(env.Duration.Seconds() / float64(len(batchSizes)*rounds*4) * 400_000)
	n = min(4_000_000, max(200_000, n/pageSamples*pageSamples))
	r.Params["samples_per_run"], r.Params["batch_rows"], r.Params["rounds"] = n, batchSizes, rounds
	r.Params["record_version"] = recordVersion()
	t := Table{Title: "Forwarder drain vs direct insert of the same rows (samples/s, medians)",
		Columns: []string{"batch rows", "drain", "direct", "ratio"}}
	p := &progress{w: env.Progress}
	for _, bs := range batchSizes {
		var drains, directs []float64
		for round := 0; round < rounds; round++ {
			dir := filepath.Join(env.Dir, fmt.Sprintf("insert-%d-%d", bs, round))
			ts := int64(1_700_000_000_000_000_000) + int64(bs*10+round)*int64(n)*10
			d, c, err := drainVsDirect(ctx, conn, env.ClickHouse, dir, n, bs, ts)
			if err != nil {
				return nil, err
			}
			drains, directs = append(drains, d), append(directs, c)
			p.say("insert: %d-row batches, round %d: drain %.0f/s, direct %.0f/s", bs, round+1, d, c)
		}
		d, c := median(drains), median(directs)
		r.Metrics[fmt.Sprintf("drain_vs_direct_%dk_ratio", bs/1000)] = d / c
		r.Metrics[fmt.Sprintf("drain_%dk_samples_per_s", bs/1000)] = d
		r.Metrics[fmt.Sprintf("direct_%dk_samples_per_s", bs/1000)] = c
		t.Rows = append(t.Rows, []string{fmt.Sprint(bs), f0(d), f0(c), f2(d / c)})
	}
	r.Tables = append(r.Tables, t)
	r.Metrics["drain_vs_direct_ratio"] = r.Metrics["drain_vs_direct_100k_ratio"]
	r.target("drain_vs_direct_ratio", ">=", 0.9) // issue 9
	return r.finish(), nil
}

func serverVersion(ctx context.Context, conn driver.Conn) string {
	var v string
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.QueryRow(qctx, "SELECT version()").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}
