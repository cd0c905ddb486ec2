package collector_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// liar is a producer that does not follow the protocol: it serves what it
// is told whatever the collector asks, and logs what the collector does.
type liar struct {
	// body returns the page body for the n-th GET (from 0); nil: an empty page.
	body func(n int) []byte
	// slow delays each page's body, to keep fetches in flight.
	slow time.Duration
	// inFlight, shared by several liars, tracks concurrent page requests.
	inFlight, maxInFlight *atomic.Int64

	mu     sync.Mutex
	gets   int
	events []string    // "get", "get+token", "ack"
	at     []time.Time // when each event's request arrived
}

func (l *liar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/ack"):
		l.mu.Lock()
		l.events = append(l.events, "ack")
		l.at = append(l.at, time.Now())
		l.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case !strings.HasSuffix(r.URL.Path, "/page"):
		http.NotFound(w, r)
		return
	}
	if l.inFlight != nil {
		now := l.inFlight.Add(1)
		defer l.inFlight.Add(-1)
		for old := l.maxInFlight.Load(); now > old && !l.maxInFlight.CompareAndSwap(old, now); old = l.maxInFlight.Load() {
		}
	}
	l.mu.Lock()
	n := l.gets
	l.gets++
	ev := "get"
	if r.URL.Query().Get("token") != "" {
		ev = "get+token"
	}
	l.events = append(l.events, ev)
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
	b := l.body(n)
	if b == nil {
		b = pa.AppendPage(nil, &pa.Page{Producer: "liar", Incarnation: "i"})
	}
	if l.slow > 0 {
		time.Sleep(l.slow)
	}
	w.Header().Set("Content-Type", pa.ContentTypeBinary)
	w.Write(b)
}

func (l *liar) log() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// gapsAfterAcks returns, for each acknowledgement followed by a page
// request, the time between the two.
func (l *liar) gapsAfterAcks() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gaps []time.Duration
	for i := 0; i+1 < len(l.events); i++ {
		if l.events[i] == "ack" && l.events[i+1] != "ack" {
			gaps = append(gaps, l.at[i+1].Sub(l.at[i]))
		}
	}
	return gaps
}

func (l *liar) count(ev string) int {
	n := 0
	for _, e := range l.log() {
		if e == ev {
			n++
		}
	}
	return n
}

func startLiar(t *testing.T, l *liar) string {
	hs := httptest.NewServer(l)
	t.Cleanup(hs.Close)
	return hs.URL
}

// counterValue reads a counter (summed over the label values that match).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func page(token string, more bool, samples []pa.Sample) []byte {
	return pa.AppendPage(nil, &pa.Page{Producer: "liar", Incarnation: "i", Token: token, More: more, Samples: samples})
}

// TestDrainBoundedAgainstTokenChangingProducer reproduces the producer whose
// token changes on every page while it says more: true (it kept a collector
// draining forever, 477,700 rows for 100 distinct samples). A drain now
// takes at most MaxDrainPages pages, acknowledges the last, and the loop
// waits for its next interval.
func TestDrainBoundedAgainstTokenChangingProducer(t *testing.T) {
	samples := sampletest.NewFleet(10).Append(nil, 100, 1)
	l := &liar{body: func(n int) []byte { return page("tok-"+strconv.Itoa(n), true, samples) }}
	url := startLiar(t, l)
	reg := prometheus.NewRegistry()
	const maxPages = 5
	c, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: 30 * time.Millisecond, DrainTimeout: time.Millisecond,
		// The page bound, not the time bound, must end each drain.
		MaxDrainPages: maxPages, MaxDrainTime: time.Hour, Producers: []collector.ProducerConfig{{ID: "liar", URL: url}},
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}, Registerer: reg})
	// Each bounded drain ends with an explicit acknowledgement; before the
	// bound there was never one (the drain never ended).
	waitFor(t, 20*time.Second, "three bounded drains", func() (bool, string) {
		return l.count("ack") >= 3, fmt.Sprintf("%d requests, %d acks", len(l.log()), l.count("ack"))
	})
	limited := counterValue(t, reg, "holdfast_collector_drain_limited_total", map[string]string{"producer": "liar"})
	stop()
	run := 0
	for i, ev := range l.log() {
		if ev == "ack" {
			run = 0
			continue
		}
		if run++; run > maxPages {
			t.Fatalf("request %d is page %d of one drain, above the bound of %d: %v", i, run, maxPages, l.log())
		}
	}
	st := c.Status().Producers[0]
	if st.DrainLimited < 3 || limited < 3 {
		t.Fatalf("bounded drains not shown: status %d, metric %v", st.DrainLimited, limited)
	}
	if st.ConsecutiveFailures != 0 {
		t.Fatalf("a bounded drain counted as a failure: %+v", st)
	}
}

// TestDrainBoundedByTime: with a time bound shorter than a page, every
// drain of a slow producer that always says more takes exactly one page.
func TestDrainBoundedByTime(t *testing.T) {
	samples := sampletest.NewFleet(10).Append(nil, 10, 1)
	l := &liar{slow: 5 * time.Millisecond, body: func(n int) []byte { return page("tok-"+strconv.Itoa(n), true, samples) }}
	url := startLiar(t, l)
	_, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: 20 * time.Millisecond, DrainTimeout: time.Millisecond,
		MaxDrainPages: 1000, MaxDrainTime: time.Nanosecond, Producers: []collector.ProducerConfig{{ID: "slow", URL: url}},
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	waitFor(t, 20*time.Second, "three bounded drains", func() (bool, string) {
		return l.count("ack") >= 3, fmt.Sprint(l.log())
	})
	stop()
	prev := "ack"
	for i, ev := range l.log() {
		if ev != "ack" && prev != "ack" {
			t.Fatalf("request %d: two pages in one drain bounded by 1ns: %v", i, l.log())
		}
		prev = ev
	}
}

// TestDrainCadenceFromStart: a drain that its time bound ended (the
// producer still says more) is followed an interval after it began, not
// after a whole interval of rest. Resting held a producer with a backlog
// to half the collector's rate: RFD 125's first period fell behind and
// producers dropped samples. Without it every gap after such a drain is at
// least 0.9 of the interval (the jitter's floor); with it, about a page's
// time. A drain that ended because the producer had no more still rests
// the whole interval after it, however long it took, so a loop that waited
// (a slow producer, in-flight room) is not sent straight back.
func TestDrainCadenceFromStart(t *testing.T) {
	const interval = time.Second
	samples := sampletest.NewFleet(10).Append(nil, 10, 1)
	for _, tt := range []struct {
		name string
		more bool
		slow time.Duration
		// rests: every gap after a drain is at least the jitter's floor;
		// else the median gap is below it.
		rests bool
	}{
		{"bound reached, the producer says more", true, 20 * time.Millisecond, false},
		{"the producer has no more, slowly", false, 300 * time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &liar{slow: tt.slow, body: func(n int) []byte { return page("tok-"+strconv.Itoa(n), tt.more, samples) }}
			url := startLiar(t, l)
			_, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: interval, DrainTimeout: time.Millisecond,
				MaxDrainPages: 1000, MaxDrainTime: interval, Producers: []collector.ProducerConfig{{ID: "p", URL: url}},
				Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
			waitFor(t, 30*time.Second, "four drains", func() (bool, string) {
				return len(l.gapsAfterAcks()) >= 4, fmt.Sprint(l.gapsAfterAcks())
			})
			stop()
			gaps := l.gapsAfterAcks()
			slices.Sort(gaps)
			floor := interval * 9 / 10
			if tt.rests {
				if gaps[0] < floor {
					t.Fatalf("a drain that ended was followed after %v (gaps %v); it should rest the interval", gaps[0], gaps)
				}
				return
			}
			// The median, so one stall of a busy machine does not decide.
			if median := gaps[len(gaps)/2]; median >= floor {
				t.Fatalf("a bounded drain rested %v before the next (gaps %v); it should follow at once", median, gaps)
			}
		})
	}
}

// TestPageBeyondLimitsIsProtocolViolation: a page beyond what the
// collector asked for (more samples than limit, a sample count its bytes
// cannot hold, more bytes than max_bytes) is refused before decoding, not
// written, not acknowledged, counted as kind="protocol", and the producer
// is shown failing. Before, the 1,000-sample answer to limit=10 was
// written and acknowledged.
func TestPageBeyondLimitsIsProtocolViolation(t *testing.T) {
	samples := sampletest.NewFleet(10).Append(nil, 1000, 1)
	lyingCount := page("tok", false, samples[:10])
	// Rewrite the block's count (one byte after the version, 10 < 128) to
	// claim a million samples.
	hdr := page("tok", false, nil)
	lyingCount = append(append(hdr[:len(hdr)-1:len(hdr)-1], binary.AppendUvarint(nil, 1_000_000)...), lyingCount[len(hdr):]...)
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"1000 samples for limit=10", page("tok", false, samples), "1000 samples, limit 10"},
		{"count the bytes cannot hold", lyingCount, "exceeds the remaining"},
		{"body above max_bytes", page("tok", false, samples[:10]), "over the body limit"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &liar{body: func(int) []byte { return tt.body }}
			url := startLiar(t, l)
			reg := prometheus.NewRegistry()
			maxBytes := int64(1 << 20)
			if i == 2 {
				maxBytes = int64(len(tt.body) - 1)
			}
			c, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: 20 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
				DrainTimeout: time.Millisecond, PageLimit: 10, MaxPageBytes: maxBytes, MaxInflightBytes: 1 << 20,
				Producers: []collector.ProducerConfig{{ID: "liar", URL: url}}, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}, Registerer: reg})
			waitFor(t, 10*time.Second, "three refused pages", func() (bool, string) {
				p := c.Status().Producers[0]
				return p.ConsecutiveFailures >= 3, stringify(p)
			})
			kind := "protocol"
			if i == 2 { // a page over max_bytes is handled as too large: smaller pages, then refused
				kind = "too_large"
			}
			protocol := counterValue(t, reg, "holdfast_collector_errors_total", map[string]string{"kind": kind})
			stop()
			p := c.Status().Producers[0]
			if !strings.Contains(p.LastError, tt.want) {
				t.Errorf("last error %q does not say %q", p.LastError, tt.want)
			}
			if protocol < 3 {
				t.Errorf("%s errors counted: %v, want >= 3", kind, protocol)
			}
			if cp := c.Checkpoint(); cp.WALLastIndex != 0 || l.count("ack") != 0 || l.count("get+token") != 0 {
				t.Fatalf("a refused page was written (WAL last index %d) or acknowledged: %v", cp.WALLastIndex, l.log())
			}
		})
	}
}

// TestInflightBytesSharedByAllLoops: four producers with slow bodies and an
// in-flight bound of two pages never have more than two page requests in
// flight at once (without the bound all four overlap).
func TestInflightBytesSharedByAllLoops(t *testing.T) {
	var inFlight, maxInFlight atomic.Int64
	samples := sampletest.NewFleet(10).Append(nil, 10, 1)
	var producers []collector.ProducerConfig
	var liars []*liar
	for i := 0; i < 4; i++ {
		l := &liar{slow: 30 * time.Millisecond, inFlight: &inFlight, maxInFlight: &maxInFlight,
			body: func(n int) []byte { return page("tok-"+strconv.Itoa(n), n%3 != 2, samples) }}
		liars = append(liars, l)
		producers = append(producers, collector.ProducerConfig{ID: "p" + strconv.Itoa(i), URL: startLiar(t, l)})
	}
	reg := prometheus.NewRegistry()
	const pageBytes = 64 << 10
	c, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: 10 * time.Millisecond, DrainTimeout: time.Millisecond, MaxDrainTime: time.Second,
		MaxPageBytes: pageBytes, MaxInflightBytes: 2 * pageBytes, Producers: producers,
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}, Registerer: reg})
	waitFor(t, 30*time.Second, "40 pages from four producers", func() (bool, string) {
		n := 0
		for _, l := range liars {
			n += len(l.log())
		}
		return n >= 40, fmt.Sprint(n)
	})
	st := c.Status()
	waits := counterValue(t, reg, "holdfast_collector_inflight_waits_total", nil)
	stop()
	if m := maxInFlight.Load(); m > 2 {
		t.Fatalf("%d page requests in flight at once, above the bound of 2 pages", m)
	}
	if st.Memory.MaxInflightBytes != 2*pageBytes || st.Memory.InflightBytes > 2*pageBytes {
		t.Fatalf("memory status: %+v", st.Memory)
	}
	if waits == 0 {
		t.Fatalf("no fetch ever waited for in-flight bytes")
	}
	t.Logf("max page requests in flight: %d", maxInFlight.Load())
}

// TestIdleLoopsPinNoPages: twenty producers each serve one 10,000-sample
// page, then nothing; once collected, their idle loops hold no page. The
// heap is attributed by allocation stack (every allocation profiled), so
// the WAL's tail segment and the forwarder's batch, which do not grow with
// the number of producers, are not counted. Before, each loop kept its
// decoded page and record buffer until it next had data: ~3 MB each here.
func TestIdleLoopsPinNoPages(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	const producers, perPage = 20, 10_000
	body := page("tok", false, sampletest.NewFleet(100).Append(nil, perPage, 1))
	var ps []collector.ProducerConfig
	var liars []*liar
	for i := 0; i < producers; i++ {
		l := &liar{body: func(n int) []byte {
			if n == 0 {
				return body
			}
			return nil
		}}
		liars = append(liars, l)
		ps = append(ps, collector.ProducerConfig{ID: "p" + strconv.Itoa(i), URL: startLiar(t, l)})
	}
	c, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: 50 * time.Millisecond, DrainTimeout: time.Millisecond,
		Producers: ps, Forwarder: forwarder.Options{Addr: "127.0.0.1:1", BatchRows: 1}})
	waitFor(t, 30*time.Second, "every page collected", func() (bool, string) {
		var n uint64
		for _, p := range c.Status().Producers {
			n += p.Samples
		}
		return n == producers*perPage, fmt.Sprint(n)
	})
	waitFor(t, 30*time.Second, "every loop idle (three empty polls)", func() (bool, string) {
		for i, l := range liars {
			if n := len(l.log()); n < 4 {
				return false, fmt.Sprintf("producer %d: %d requests", i, n)
			}
		}
		return true, ""
	})
	held := inUseUnder("collector.(*Collector).runProducer")
	stop()
	onePage := int64(perPage * 208) // the decoded Sample structs alone
	t.Logf("producer loops hold %d bytes with %d idle producers (one decoded page: >= %d bytes)", held, producers, onePage)
	if held > onePage {
		t.Fatalf("%d idle producer loops hold %d bytes, more than one decoded page (%d bytes)", producers, held, onePage)
	}
}

// inUseUnder sums the live heap allocated under a function (by name).
func inUseUnder(fn string) int64 {
	// The profile can lag by up to two cycles (it reflects the last completed
	// one), so three collections make frames freed just now disappear.
	runtime.GC()
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var sum int64
	for _, r := range recs {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if strings.HasSuffix(f.Function, fn) {
				sum += r.InUseBytes()
				break
			}
			if !more {
				break
			}
		}
	}
	return sum
}

// TestProducerCap: a PUT above --max-producers is refused with 422 naming
// the cap and changes nothing; a registry assignment above it starts the
// first MaxProducers (by id) and shows, logs and counts the rest.
func TestProducerCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, _ := runCollector(t, collector.Options{DataDir: t.TempDir(), MaxProducers: 3, DrainTimeout: time.Millisecond,
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}, Registerer: reg})
	admin := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: reg}))
	defer admin.Close()
	put := func(n int) (int, string) {
		var in []map[string]string
		for i := 0; i < n; i++ {
			in = append(in, map[string]string{"id": "p" + strconv.Itoa(i), "url": "http://127.0.0.1:1/" + strconv.Itoa(i), "interval": "1h"})
		}
		b, _ := json.Marshal(in)
		req, _ := http.NewRequest(http.MethodPut, admin.URL+"/v1/producers", bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := put(3); code != 200 {
		t.Fatalf("PUT of 3 producers: %d %s", code, body)
	}
	code, body := put(5)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "cap is 3 producers") {
		t.Fatalf("PUT of 5 producers with a cap of 3: %d %s", code, body)
	}
	if got := assignedIDs(c); got != "p0,p1,p2" {
		t.Fatalf("a refused PUT changed the set: %s", got)
	}

	fake := &fakeRegistry{}
	fake.set(names(5), 0)
	hs := httptest.NewServer(fake)
	defer hs.Close()
	reg2 := prometheus.NewRegistry()
	c2, _ := runCollector(t, collector.Options{DataDir: t.TempDir(), MaxProducers: 3, RegistryURL: hs.URL, RefreshInterval: 20 * time.Millisecond,
		DrainTimeout: time.Millisecond, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}, Registerer: reg2})
	waitFor(t, 10*time.Second, "the capped assignment", func() (bool, string) {
		st := c2.Status()
		return assignedIDs(c2) == "p0,p1,p2" && st.Memory.ProducersOverCap == 2, stringify(st.Memory) + " " + assignedIDs(c2)
	})
	if st := c2.Status(); !strings.Contains(st.Memory.LastOverCapMessage, "2 producers over the cap of 3") {
		t.Fatalf("status does not explain the cap: %+v", st.Memory)
	}
	if n := counterValue(t, reg2, "holdfast_collector_producers_over_cap", nil); n != 2 {
		t.Fatalf("producers_over_cap = %v, want 2", n)
	}
}

// TestStalledBodyReleasesItsReservation: a producer that sends headers and
// half a page, then stalls, times out and gives back its in-flight bytes;
// with room for a single page in flight, a healthy producer beside it keeps
// being collected.
func TestStalledBodyReleasesItsReservation(t *testing.T) {
	samples := sampletest.NewFleet(10).Append(nil, 10, 1)
	stall := make(chan struct{})
	defer close(stall)
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := page("tok", false, samples)
		w.Header().Set("Content-Type", pa.ContentTypeBinary)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer stalled.Close()
	good := &liar{body: func(n int) []byte { return page("tok-"+strconv.Itoa(n), false, samples) }}
	const pageBytes = 64 << 10
	c, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), DefaultInterval: 20 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		RequestTimeout: 100 * time.Millisecond, DrainTimeout: time.Millisecond, MaxPageBytes: pageBytes, MaxInflightBytes: pageBytes,
		Producers: []collector.ProducerConfig{{ID: "stalled", URL: stalled.URL}, {ID: "good", URL: startLiar(t, good)}},
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	waitFor(t, 30*time.Second, "the stalled producer failing three times while the good one is collected", func() (bool, string) {
		st := c.Status()
		var s, g collector.ProducerStatus
		for _, p := range st.Producers {
			if p.ID == "stalled" {
				s = p
			} else {
				g = p
			}
		}
		return s.ConsecutiveFailures >= 3 && g.Pages >= 10, stringify(st.Producers) + stringify(st.Memory)
	})
	stop()
	if st := c.Status(); st.Memory.InflightBytes != 0 {
		t.Fatalf("%d bytes still reserved after every loop stopped", st.Memory.InflightBytes)
	}
}
