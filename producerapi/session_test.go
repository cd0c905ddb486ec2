package producerapi_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// v3Sim is a collector's side of page v3 sessions over real HTTP: it keeps
// the session's definitions, names its session and the ids it has in each
// request, checks every page against the rules (a new session starts at id
// 0; a continued one at the ids it has) and decodes the samples with the
// definitions of the whole session.
type v3Sim struct {
	t       *testing.T
	c       *pa.Client
	session uint64
	defs    [][]byte // raw definition of each id
	types   []pa.DatumType
	token   string // of the last page

	// the last page
	page    pa.Page
	block   []byte
	size    int
	first   uint64
	ndefs   int
	samples []pa.Sample
	renewed bool // the page started a new session
}

func newV3Sim(t *testing.T, base, id string) *v3Sim {
	return &v3Sim{t: t, c: &pa.Client{BaseURL: base, CollectorID: id}}
}

// req is the request of a collector that acknowledges the last page (ack)
// or asks for it again, naming its session.
func (v *v3Sim) req(ack bool) pa.FetchRequest {
	r := pa.FetchRequest{Limit: 10_000, Session: v.session, Known: uint64(len(v.defs))}
	if ack {
		r.Token = v.token
	}
	return r
}

// get fetches a page for r and checks it; with commit the collector keeps
// the page's definitions (its WAL write succeeded), otherwise its session
// stays as it was.
func (v *v3Sim) get(r pa.FetchRequest, commit bool) {
	t := v.t
	t.Helper()
	n, block, err := v.c.FetchRaw(context.Background(), r, &v.page)
	if err != nil {
		t.Fatal(err)
	}
	if v.page.Version != pa.PageVersion3 || block == nil || v.page.Session == 0 {
		t.Fatalf("page version %d, session %x, block %v: want a v3 page", v.page.Version, v.page.Session, block != nil)
	}
	v.size, v.block = n, bytes.Clone(block)
	var sc pa.BlockScanner
	if err := sc.Reset3(block, nil); err != nil {
		t.Fatal(err)
	}
	v.first, v.ndefs = sc.FirstID(), sc.NumSeries()
	defs, types := v.defs[:len(v.defs):len(v.defs)], v.types[:len(v.types):len(v.types)]
	v.renewed = v.page.Session != r.Session
	if v.renewed {
		if v.first != 0 {
			t.Fatalf("a new session's page starts at id %d", v.first)
		}
		defs, types = nil, nil
	} else if v.first != uint64(len(defs)) {
		t.Fatalf("the session continues at id %d, the collector has %d", v.first, len(defs))
	}
	for i := 0; i < sc.NumSeries(); i++ {
		defs = append(defs, bytes.Clone(sc.Series(i).Raw))
	}
	types = sc.AppendSessionTypes(types)
	sc.SetSessionTypes(types)
	v.samples = v.samples[:0]
	var sv pa.SampleView
	for sc.Next(&sv) {
		id, err := pa.DecodeSeries(defs[sv.Series])
		if err != nil {
			t.Fatal(err)
		}
		v.samples = append(v.samples, pa.Sample{Target: id.Target, Metric: id.Metric, TimestampNs: sv.TimestampNs, Datum: sv.Datum()})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if commit {
		v.session, v.defs, v.types = v.page.Session, defs, types
	}
	v.token = v.page.Token
}

// want checks the last page held exactly want, in order.
func (v *v3Sim) want(want []pa.Sample) {
	v.t.Helper()
	if len(v.samples) != len(want) {
		v.t.Fatalf("page of %d samples, want %d", len(v.samples), len(want))
	}
	for i := range want {
		if !sameSample(&want[i], &v.samples[i]) {
			v.t.Fatalf("sample %d differs: %+v, want %+v", i, v.samples[i], want[i])
		}
	}
}

// expect checks the last page's session and definitions.
func (v *v3Sim) expect(renewed bool, first uint64, ndefs int) {
	v.t.Helper()
	if v.renewed != renewed || v.first != first || v.ndefs != ndefs {
		v.t.Fatalf("page: new session %v, first id %d, %d defs; want %v, %d, %d", v.renewed, v.first, v.ndefs, renewed, first, ndefs)
	}
}

// TestSessionRules: when a producer continues a collector's page v3 session
// and when it starts a new one, over real HTTP, with every page checked
// against the collector's definitions and decoded exactly.
func TestSessionRules(t *testing.T) {
	const series = 220 // 10 VMs of 22 measurements
	round := func(f *sampletest.Fleet, r int) []pa.Sample { return f.Append(nil, series, int64(r)*10_000_000_000) }
	tests := []struct {
		name string
		opts pa.ServerOptions
		run  func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet)
	}{
		{"a request without a session starts one", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			in := round(f, 1)
			s.Add(in)
			v.get(v.req(false), true)
			v.expect(true, 0, series)
			v.want(in)
			first := v.session
			v.get(pa.FetchRequest{}, false) // the same page, no session named: a new one again
			v.expect(true, 0, series)
			v.want(in)
			if v.page.Session == first {
				t.Fatal("a request without a session got the old one")
			}
		}},
		{"an acknowledged page continues the session", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			in := round(f, 2)
			s.Add(in)
			v.get(v.req(true), true)
			v.expect(false, series, 0) // the same series: no definition
			v.want(in)
			// New series get the next ids, in page order.
			more := sampletest.NewFleet(1)
			more.FirstVM = 10
			in = append(round(f, 3), more.Append(nil, 22, 3)...)
			s.Add(in)
			v.get(v.req(true), true)
			v.expect(false, series, 22)
			v.want(in)
			if st := s.Stats().Collectors["c"]; st.Session != fmt.Sprintf("%016x", v.session) || st.SessionSeries != series+22 {
				t.Fatalf("stats %+v", st)
			}
		}},
		{"a page asked again in the same session keeps its ids", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			in := append(round(f, 2), func() []pa.Sample { g := sampletest.NewFleet(1); g.FirstVM = 10; return g.Append(nil, 22, 2) }()...)
			s.Add(in)
			v.get(v.req(true), false) // the WAL write failed: the collector keeps its session as it was
			v.expect(false, series, 22)
			block, token := v.block, v.token
			v.get(v.req(false), true)
			v.expect(false, series, 22)
			v.want(in)
			if !bytes.Equal(v.block, block) || v.token != token {
				t.Fatal("the page asked again differs")
			}
		}},
		{"a restarted collector gets the outstanding page defined from id 0 in a new session", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			in := round(f, 2)
			s.Add(in)
			v.get(v.req(true), false)
			v.expect(false, series, 0)
			token, old := v.token, v.session
			// Restart: no session, no token.
			v.session, v.defs, v.types = 0, nil, nil
			v.get(v.req(false), true)
			v.expect(true, 0, series)
			v.want(in)
			if v.token != token || v.session == old {
				t.Fatalf("token %q (was %q), session %x (was %x)", v.token, token, v.session, old)
			}
		}},
		{"a wrong session id starts a new session", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			in := round(f, 2)
			s.Add(in)
			r := v.req(true)
			r.Session++
			v.get(r, true)
			v.expect(true, 0, series)
			v.want(in)
		}},
		{"a wrong known count starts a new session", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			in := round(f, 2)
			s.Add(in)
			r := v.req(true)
			r.Known--
			v.get(r, true)
			v.expect(true, 0, series)
			v.want(in)
		}},
		{"a stale token releases nothing and the page comes again in a new session", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			in := round(f, 1)
			s.Add(in)
			v.get(v.req(false), true)
			token := v.token
			s.Add(round(f, 2))
			r := v.req(true)
			r.Token = "bogus"
			v.get(r, true) // known 220, but the producer's acked ids are 0
			v.expect(true, 0, series)
			v.want(in)
			if v.token != token {
				t.Fatal("a stale token changed the page")
			}
		}},
		{"POST ack makes the page's definitions known", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			if ok, err := v.c.Ack(context.Background(), v.token); !ok || err != nil {
				t.Fatal(ok, err)
			}
			in := round(f, 2)
			s.Add(in)
			v.get(v.req(false), true)
			v.expect(false, series, 0)
			v.want(in)
		}},
		{"a request for another encoding ends the session", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			in := round(f, 2)
			s.Add(in)
			v1 := &pa.Client{BaseURL: v.c.BaseURL, CollectorID: "c", BinaryVersion: 1}
			var p pa.Page
			if _, err := v1.Fetch(context.Background(), pa.FetchRequest{Token: v.token, Limit: 10_000}, &p); err != nil || len(p.Samples) != series {
				t.Fatal(err, len(p.Samples))
			}
			if st := s.Stats().Collectors["c"]; st.Session != "" || st.SessionSeries != 0 {
				t.Fatalf("the session outlived a v1 request: %+v", st)
			}
			v.get(v.req(false), true) // the page the v1 request got, in a new session
			v.expect(true, 0, series)
			v.want(in)
		}},
		{"a session at MaxSessionSeries starts over at the next page", pa.ServerOptions{MaxSessionSeries: 230}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			more := sampletest.NewFleet(1)
			more.FirstVM = 10
			s.Add(round(f, 1))
			v.get(v.req(false), true)
			v.expect(true, 0, series)
			in := append(round(f, 2), more.Append(nil, 22, 2)...)
			s.Add(in)
			v.get(v.req(true), false) // 242 ids, past the cap; the write fails
			v.expect(false, series, 22)
			v.get(v.req(false), true) // the outstanding page keeps its session and ids
			v.expect(false, series, 22)
			v.want(in)
			in = append(round(f, 3), more.Append(nil, 22, 3)...)
			s.Add(in)
			v.get(v.req(true), true)
			v.expect(true, 0, series+22)
			v.want(in)
		}},
		{"max_bytes cuts a page in its own encoding; a re-cut defines only what it holds", pa.ServerOptions{}, func(t *testing.T, s *pa.Server, v *v3Sim, f *sampletest.Fleet) {
			v.get(v.req(false), true) // an empty page: the collector has the session and no id
			v.expect(true, 0, 0)
			in := round(f, 1)
			s.Add(in)
			r := v.req(false)
			r.MaxBytes = 8 << 10
			v.get(r, false) // its write fails
			n := len(v.samples)
			if v.size > r.MaxBytes || n == 0 || n >= series || v.ndefs != n || !v.page.More || v.renewed {
				t.Fatalf("page of %d bytes, %d samples, %d defs (more %v, new session %v) for max_bytes %d", v.size, n, v.ndefs, v.page.More, v.renewed, r.MaxBytes)
			}
			v.want(in[:n])
			// Asked again with less room: re-cut in the same session; the
			// definitions of the samples cut out go too (the collector never
			// acknowledged them), or the page could not fit.
			r.MaxBytes = 4 << 10
			v.get(r, true)
			m := len(v.samples)
			if v.size > r.MaxBytes || m == 0 || m >= n {
				t.Fatalf("re-cut page of %d bytes, %d samples for max_bytes %d", v.size, m, r.MaxBytes)
			}
			v.expect(false, 0, m)
			v.want(in[:m])
			v.get(v.req(true), true)
			v.expect(false, uint64(m), series-m)
			v.want(in[m:])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = quiet
			s, hs := newProducer(t, tt.opts)
			tt.run(t, s, newV3Sim(t, hs.URL, "c"), sampletest.NewFleet(10))
		})
	}
}

// TestPageV3SampleSize: a producer drained every interval sends each
// series once a page. With v2 every page carries every identity (~110
// bytes a sample); with v3 the second page of the same series set carries
// only ids and values: under 30 bytes a sample for RFD 125's gauges.
func TestPageV3SampleSize(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
	var gauges []pa.Sample
	for _, smp := range sampletest.NewFleet(500).Append(nil, 500*22, 1) {
		if smp.Datum.Type == pa.DatumF64 {
			gauges = append(gauges, smp)
		}
	}
	v := newV3Sim(t, hs.URL, "c")
	v2 := &pa.Client{BaseURL: hs.URL, CollectorID: "v2", BinaryVersion: 2}
	var p2 pa.Page
	var token2 string
	for r := int64(1); r <= 2; r++ {
		in := make([]pa.Sample, len(gauges))
		for i := range gauges {
			in[i] = gauges[i]
			in[i].TimestampNs = r * 10_000_000_000
		}
		s.Add(in)
		v.get(v.req(true), true)
		v.want(in)
		n2, err := v2.Fetch(context.Background(), pa.FetchRequest{Token: token2, Limit: 10_000}, &p2)
		if err != nil || p2.Version != 2 || len(p2.Samples) != len(in) {
			t.Fatal(err, p2.Version, len(p2.Samples))
		}
		token2 = p2.Token
		t.Logf("page %d: %d samples, v3 %.1f B/sample (%d defs), v2 %.1f B/sample", r, len(in),
			float64(v.size)/float64(len(in)), v.ndefs, float64(n2)/float64(len(in)))
		if r == 2 {
			if per := float64(v.size) / float64(len(in)); per >= 30 || v.ndefs != 0 {
				t.Fatalf("second page: %.1f bytes a sample with %d defs, want under 30 and none", per, v.ndefs)
			}
		}
	}
}

// TestSessionParamsValidated: a malformed session or known parameter gets
// 400 and changes nothing; both are read only for page v3.
func TestSessionParamsValidated(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
	s.Add(fleet(10, 1))
	for _, q := range []string{"session=12", "session=00000000000000AB", "session=000000000000000g", "known=-1", "session=0000000000000001&known=x"} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/collectors/c/page?"+q, nil)
		req.Header.Set("Accept", pa.ContentTypeBinaryV3)
		rp := doRaw(t, req, true)
		if rp.status != http.StatusBadRequest || rp.errMsg == "" {
			t.Errorf("%s: status %d %q, want 400 with a message", q, rp.status, rp.errMsg)
		}
	}
	if st := s.Stats(); len(st.Collectors) != 0 || st.Sessions != 0 {
		t.Fatalf("a refused request changed the producer: %+v", st)
	}
	// A v2 request ignores them.
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/collectors/c/page?session=bad", nil)
	req.Header.Set("Accept", pa.ContentTypeBinaryV2)
	if rp := doRaw(t, req, true); rp.status != http.StatusOK || len(rp.page.Samples) != 10 {
		t.Fatalf("v2 request with a session parameter: %d %s", rp.status, rp.errMsg)
	}
}

// TestSessionRandomOps drives one producer with a v3 collector doing
// everything a collector does, in random order: acknowledge or not, fail
// its WAL write (keeping its session as it was), restart, acknowledge with
// POST ack, shrink max_bytes (re-cuts), while new series keep appearing and
// the session cap is crossed. Every page is checked against the session
// rules and decoded with the session's definitions; at the end every
// sample arrived exactly once and exactly as produced.
func TestSessionRandomOps(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Logger: quiet, MaxSessionSeries: 300})
	v := newV3Sim(t, hs.URL, "c")
	r := rand.New(rand.NewPCG(9, 9))
	produced := map[int64]pa.Sample{}
	delivered := map[int64]bool{}
	var pending []pa.Sample // the last page taken (committed), until acknowledged
	ts := int64(0)
	fleets := make([]*sampletest.Fleet, 40) // 880 series
	for i := range fleets {
		fleets[i] = sampletest.NewFleet(1)
		fleets[i].FirstVM = i
	}
	deliver := func() {
		for _, smp := range pending {
			if delivered[smp.TimestampNs] {
				t.Fatalf("sample %d delivered twice", smp.TimestampNs)
			}
			delivered[smp.TimestampNs] = true
		}
		pending = nil
	}
	take := func(commit bool) {
		if !commit {
			return
		}
		pending = append(pending[:0:0], v.samples...)
		for i := range v.samples {
			want, ok := produced[v.samples[i].TimestampNs]
			if !ok || !sameSample(&want, &v.samples[i]) {
				t.Fatalf("sample %d differs from what was produced", v.samples[i].TimestampNs)
			}
		}
	}
	for op := 0; op < 1500; op++ {
		if r.IntN(3) == 0 { // new samples of a few VMs (some never seen before)
			for _, f := range fleets[:min(len(fleets), 5+op/40)] {
				if r.IntN(4) == 0 {
					for _, smp := range f.Append(nil, 22, 0) {
						ts++
						smp.TimestampNs = ts
						produced[ts] = smp
						s.Add([]pa.Sample{smp})
					}
				}
			}
		}
		req := v.req(true)
		if r.IntN(4) == 0 {
			req.MaxBytes = 1 + r.IntN(20_000)
		}
		if r.IntN(3) == 0 {
			req.Limit = 1 + r.IntN(200)
		}
		commit := r.IntN(5) != 0
		switch r.IntN(10) {
		case 0: // restart: no session, no token; the taken page was never acknowledged
			v.session, v.defs, v.types, v.token, pending = 0, nil, nil, "", nil
			req = v.req(false)
		case 1: // POST ack, then a request without the token
			if v.token != "" {
				if ok, err := v.c.Ack(context.Background(), v.token); err != nil || !ok {
					t.Fatalf("ack: %v %v", ok, err)
				}
				deliver()
				v.token = ""
			}
			req.Token = ""
		}
		if req.Token != "" {
			deliver()
		}
		v.get(req, commit)
		take(commit)
		if !commit {
			v.token = "" // its write failed: it will ask for the page again
		}
	}
	for i := 0; ; i++ { // drain
		if v.token != "" {
			deliver()
		}
		v.get(v.req(true), true)
		take(true)
		if v.token == "" {
			break
		}
		if i > 10_000 {
			t.Fatal("drain does not end")
		}
	}
	if len(delivered) != len(produced) {
		t.Fatalf("%d samples delivered of %d produced", len(delivered), len(produced))
	}
	st := s.Stats()
	t.Logf("%d samples, %d sessions started", len(produced), st.Sessions)
}
