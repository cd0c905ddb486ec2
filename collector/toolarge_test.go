package collector_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
)

// contractProducer serves samples by the page protocol as issue 8 has it: it
// honours `limit`, and (when honourBytes) `max_bytes`, also for the page it
// holds (re-cut: nothing of a held page was released yet). A page of one
// sample may exceed max_bytes. With honourBytes false it is a producer of
// an older build or another implementation, which the library is not; the
// library itself is tested by TestTooLargePageLeadsToSmallerPagesLibraryProducer.
type contractProducer struct {
	honourBytes bool
	samples     []pa.Sample

	mu       sync.Mutex
	next     int // first sample not released
	held     int // samples in the held page, 0: none
	token    string
	serial   int
	released int
	requests []string // limit/max_bytes of each request
}

func (p *contractProducer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := r.URL.Query()
	if tok := q.Get("token"); tok != "" && tok == p.token && p.held > 0 {
		p.next += p.held
		p.released += p.held
		p.held, p.token = 0, ""
	}
	if strings.HasSuffix(r.URL.Path, "/ack") {
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	maxBytes, _ := strconv.Atoi(q.Get("max_bytes"))
	p.requests = append(p.requests, q.Get("limit")+"/"+q.Get("max_bytes"))
	n := min(limit, len(p.samples)-p.next)
	page := pa.Page{Version: 1, Producer: "contract", Incarnation: "inc-1"}
	for ; n > 0; n-- {
		page.Samples = p.samples[p.next : p.next+n]
		if !p.honourBytes || n == 1 || len(pa.AppendPage(nil, &page)) <= maxBytes {
			break
		}
	}
	page.Samples = p.samples[p.next : p.next+n]
	if n > 0 {
		p.held = n
		p.serial++
		p.token = fmt.Sprintf("t%d", p.serial)
		page.Token = p.token
		page.More = p.next+n < len(p.samples)
	}
	w.Header().Set("Content-Type", pa.ContentTypeBinary)
	w.Write(pa.AppendPage(nil, &page))
}

func (p *contractProducer) state() (released int, requests []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.released, append([]string(nil), p.requests...)
}

// TestTooLargePageLeadsToSmallerPages: pages over the collector's body limit
// (--max-page-bytes) make it ask for smaller ones until they fit, and grow
// back; one sample that can never fit is quarantined as too_large and its
// page acknowledged, so the producer is never stuck; everything else
// arrives in ClickHouse exactly once. Before issue 8 the first such page was
// refused with an error and asked for again, forever.
func TestTooLargePageLeadsToSmallerPages(t *testing.T) {
	for _, honourBytes := range []bool{false, true} {
		t.Run(fmt.Sprintf("honour_max_bytes=%v", honourBytes), func(t *testing.T) {
			ch := newClickHouse(t, "")
			db := ch.database("toolarge")
			var samples []pa.Sample
			ts := time.Now().UnixNano()
			for i := 0; i < 3000; i++ {
				samples = append(samples, testSample(i, ts+int64(i)))
			}
			huge := testSample(0, ts+5000)
			huge.Metric.Name = "blob"
			huge.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 40<<10)} // valid (64 KiB limit), over the 16 KiB body limit
			samples = append(samples[:1700], append([]pa.Sample{huge}, samples[1700:]...)...)
			prod := &contractProducer{honourBytes: honourBytes, samples: samples}
			hs := httptest.NewServer(prod)
			defer hs.Close()
			admin := freeAddr(t)
			c := startProc(t, "collector", collectorArgs(t.TempDir(), admin, ch.addr, db, []string{strings.TrimPrefix(hs.URL, "http://")},
				"--page-limit", "1000", "--max-page-bytes", "16KiB")...)
			waitFor(t, time.Minute, "every sample released", func() (bool, string) {
				released, reqs := prod.state()
				return released == len(samples), fmt.Sprintf("released %d of %d; last requests %v", released, len(samples), reqs[max(0, len(reqs)-8):])
			})
			flush(t, admin)
			ch.expect(db, uint64(len(samples)-1))
			st, err := collectorStatus(admin)
			if err != nil {
				t.Fatal(err)
			}
			p := st.Producers[0]
			if p.RejectedSamples != 1 || !strings.Contains(p.LastRejectReason, "single sample larger than the collector's page body limit of 16384 bytes") {
				t.Fatalf("producer status %+v", p)
			}
			_, reqs := prod.state()
			if !honourBytes && !strings.Contains(strings.Join(reqs, " "), "1/") {
				t.Fatalf("never asked for one sample: %v", reqs)
			}
			if reqs[0] != "1000/16384" {
				t.Fatalf("first request %s, want limit 1000 and max_bytes 16384", reqs[0])
			}
			out, err := hf(t, "quarantine", "list", "--admin", admin)
			if err != nil || !strings.Contains(out, "too_large") {
				t.Fatalf("list: %v\n%s", err, out)
			}
			c.stop()
		})
	}
}

// TestTooLargePageLeadsToSmallerPagesLibraryProducer is the same as
// TestTooLargePageLeadsToSmallerPages against the producer library itself,
// once speaking binary and once JSON only (a proxy strips the binary type
// from Accept): a JSON body over the limit cannot be read in part, so the
// page's token and sample count come from its X-Holdfast-* headers. Before
// them, the JSON producer's sample too large to fit was a dead end: the
// collector could neither acknowledge it nor ask for less.
func TestTooLargePageLeadsToSmallerPagesLibraryProducer(t *testing.T) {
	for _, jsonOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonOnly), func(t *testing.T) {
			ch := newClickHouse(t, "")
			db := ch.database("toolargelib")
			var samples []pa.Sample
			ts := time.Now().UnixNano()
			for i := 0; i < 3000; i++ {
				samples = append(samples, testSample(i, ts+int64(i)))
			}
			huge := testSample(0, ts+5000)
			huge.Metric.Name = "blob"
			huge.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 40<<10)}
			samples = append(samples[:1700], append([]pa.Sample{huge}, samples[1700:]...)...)
			addr := startLibProducer(t, samples)
			target := addr
			if jsonOnly {
				u, _ := url.Parse("http://" + addr)
				proxy := httputil.NewSingleHostReverseProxy(u)
				direct := proxy.Director
				proxy.Director = func(r *http.Request) {
					direct(r)
					r.Header.Set("Accept", pa.ContentTypeJSON)
				}
				hs := httptest.NewServer(proxy)
				defer hs.Close()
				target = strings.TrimPrefix(hs.URL, "http://")
			}
			admin := freeAddr(t)
			c := startProc(t, "collector", collectorArgs(t.TempDir(), admin, ch.addr, db, []string{target}, "--page-limit", "1000", "--max-page-bytes", "16KiB")...)
			waitReleased(t, addr, uint64(len(samples)), time.Minute)
			flush(t, admin)
			ch.expect(db, uint64(len(samples)-1))
			st, err := collectorStatus(admin)
			if err != nil {
				t.Fatal(err)
			}
			if p := st.Producers[0]; p.RejectedSamples != 1 || !strings.Contains(p.LastRejectReason, "single sample larger") {
				t.Fatalf("producer status %+v", p)
			}
			c.stop()
		})
	}
}
