package producerapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
)

// rawPage asks for a page over real HTTP without the collector's client, so
// the test sees status codes and body sizes as sent.
type rawPage struct {
	status int
	body   []byte
	page   pa.Page
	errMsg string
}

func httpPage(t *testing.T, base, auth, collector, token string, limit, maxBytes int, binary bool) rawPage {
	t.Helper()
	accept := ""
	if binary {
		accept = pa.ContentTypeBinary
	}
	return httpPageAs(t, base, auth, collector, token, limit, maxBytes, accept)
}

// httpPageAs asks for a page in the encoding accept names ("": JSON); a v3
// page comes without a session, so it is self-contained.
func httpPageAs(t *testing.T, base, auth, collector, token string, limit, maxBytes int, accept string) rawPage {
	t.Helper()
	q := url.Values{}
	if token != "" {
		q.Set("token", token)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if maxBytes > 0 {
		q.Set("max_bytes", strconv.Itoa(maxBytes))
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/collectors/"+collector+"/page?"+q.Encode(), nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	return doRaw(t, req, accept != "")
}

func doRaw(t *testing.T, req *http.Request, binary bool) rawPage {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	rp := rawPage{status: resp.StatusCode, body: body}
	if resp.StatusCode != http.StatusOK || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/page") {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		rp.errMsg = e.Error
		return rp
	}
	if binary {
		err = pa.DecodePage(body, &rp.page)
	} else {
		err = pa.UnmarshalPageJSON(body, &rp.page)
	}
	if err != nil {
		t.Fatalf("decoding a page: %v", err)
	}
	return rp
}

func httpDo(t *testing.T, method, u, auth string) rawPage {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	return doRaw(t, req, false)
}

// TestUnauthenticatedRequestsChangeNothing: with a token configured, no
// route creates, advances, releases or deletes anything without it.
func TestUnauthenticatedRequestsChangeNothing(t *testing.T) {
	const secret = "s3cret"
	s, hs := newProducer(t, pa.ServerOptions{AuthToken: secret, Logger: quiet})
	s.Add(fleet(30, 0))
	good := httpPage(t, hs.URL, secret, "a", "", 10, 0, true)
	if good.status != 200 || len(good.page.Samples) != 10 {
		t.Fatalf("authenticated page: %d %s", good.status, good.errMsg)
	}
	before := s.Stats()
	for _, auth := range []string{"", "wrong", secret + "x"} {
		for _, r := range []struct{ method, path string }{
			{http.MethodGet, "/v1/collectors/new-id/page"},
			{http.MethodGet, "/v1/collectors/a/page?token=" + good.page.Token}, // would acknowledge
			{http.MethodPost, "/v1/collectors/a/ack?token=" + good.page.Token},
			{http.MethodDelete, "/v1/collectors/a"},
			{http.MethodGet, "/v1/stats"},
		} {
			if got := httpDo(t, r.method, hs.URL+r.path, auth); got.status != http.StatusUnauthorized || got.errMsg == "" {
				t.Fatalf("%s %s with token %q: %d %q; want 401 with an error", r.method, r.path, auth, got.status, got.errMsg)
			}
		}
	}
	after := s.Stats()
	if len(after.Collectors) != 1 || after.Collectors["a"].Outstanding != 10 || after.BufferStats != before.BufferStats {
		t.Fatalf("unauthenticated requests changed state: before %+v %v, after %+v %v", before.BufferStats, before.Collectors, after.BufferStats, after.Collectors)
	}
}

// TestMadeUpCollectorIDsCannotPinMemory: 200 made-up collector ids (issue 8
// took a producer from 49 MB to 1.15 GB this way) get at most MaxCollectors
// cursors; the rest are refused with 429 and a clear error.
func TestMadeUpCollectorIDsCannotPinMemory(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{MaxCollectors: 5, Logger: quiet})
	s.Add(fleet(50, 0))
	refused := 0
	for i := 0; i < 200; i++ {
		rp := httpPage(t, hs.URL, "", fmt.Sprintf("made-up-%d", i), "", 10, 0, false)
		switch {
		case i < 5 && rp.status == 200:
		case i >= 5 && rp.status == http.StatusTooManyRequests && strings.Contains(rp.errMsg, "max-collectors"):
			refused++
		default:
			t.Fatalf("request %d: %d %q", i, rp.status, rp.errMsg)
		}
	}
	st := s.Stats()
	if len(st.Collectors) != 5 || refused != 195 || st.Refused != 195 {
		t.Fatalf("%d cursors, %d refused (stats %d)", len(st.Collectors), refused, st.Refused)
	}
	// Deleting one makes room; deleting an unknown one is a 404.
	if rp := httpDo(t, http.MethodDelete, hs.URL+"/v1/collectors/made-up-0", ""); rp.status != 200 {
		t.Fatalf("DELETE: %d %s", rp.status, rp.errMsg)
	}
	if rp := httpDo(t, http.MethodDelete, hs.URL+"/v1/collectors/made-up-0", ""); rp.status != 404 {
		t.Fatalf("second DELETE: %d", rp.status)
	}
	if rp := httpPage(t, hs.URL, "", "real", "", 10, 0, false); rp.status != 200 {
		t.Fatalf("after a delete: %d %s", rp.status, rp.errMsg)
	}
}

// TestIdleCursorExpires: a static producer expires a cursor idle for
// CursorTTL; what only it held counts as dropped; the stats show each
// cursor's last request; configured collectors never expire.
func TestIdleCursorExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, hs := newProducer(t, pa.ServerOptions{CursorTTL: 10 * time.Minute, Collectors: []string{"configured"}, Logger: quiet})
	pa.SetClock(s, func() time.Time { return now })
	s.Add(fleet(40, 0))
	// "configured" takes everything and acknowledges; "gone" takes a page
	// and is never heard from again.
	gone := httpPage(t, hs.URL, "", "gone", "", 15, 0, true)
	if gone.status != 200 || len(gone.page.Samples) != 15 {
		t.Fatalf("gone: %d %s", gone.status, gone.errMsg)
	}
	a := httpPage(t, hs.URL, "", "configured", "", 100, 0, true)
	httpPage(t, hs.URL, "", "configured", a.page.Token, 100, 0, true)
	st := s.Stats()
	if st.Pending != 40 || !st.Collectors["gone"].LastRequest.Equal(now) || st.Collectors["gone"].Expires.IsZero() || !st.Collectors["configured"].Pinned {
		t.Fatalf("before expiry: %+v %+v", st.BufferStats, st.Collectors)
	}
	now = now.Add(9 * time.Minute)
	httpPage(t, hs.URL, "", "configured", "", 100, 0, true)
	if st := s.Stats(); len(st.Collectors) != 2 {
		t.Fatalf("expired early: %v", st.Collectors)
	}
	now = now.Add(2 * time.Minute) // "gone" idle 11 minutes, "configured" 2
	st = s.Stats()
	if _, ok := st.Collectors["gone"]; ok || len(st.Collectors) != 1 || st.Expired != 1 {
		t.Fatalf("after the TTL: %v, %d expired", st.Collectors, st.Expired)
	}
	if st.Pending != 0 || st.Dropped != 40 || st.Released != 0 {
		t.Fatalf("what only the expired cursor held should count as dropped: %+v", st.BufferStats)
	}
	// Its late acknowledgement releases nothing and creates nothing.
	if rp := httpDo(t, http.MethodPost, hs.URL+"/v1/collectors/gone/ack?token="+gone.page.Token, ""); rp.status != http.StatusConflict {
		t.Fatalf("late ack: %d", rp.status)
	}
	if st := s.Stats(); len(st.Collectors) != 1 {
		t.Fatalf("a late ack created a cursor: %v", st.Collectors)
	}
}

// TestAssignedProducerServesOnlyItsCollectors: once a registry assignment
// arrived, other collectors get 403; a collector moved away is let go once
// its successor holds everything it had not acknowledged, and a late request
// from it (issue 8 item 7: it recreated the cursor, and the producer held
// samples for it forever) neither recreates the cursor nor holds anything.
func TestAssignedProducerServesOnlyItsCollectors(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
	s.SetAssignment([]string{"old"})
	s.Add(fleet(30, 0))
	if rp := httpPage(t, hs.URL, "", "stranger", "", 10, 0, true); rp.status != http.StatusForbidden || !strings.Contains(rp.errMsg, "not assigned") {
		t.Fatalf("stranger: %d %q", rp.status, rp.errMsg)
	}
	held := httpPage(t, hs.URL, "", "old", "", 10, 0, true) // old holds 0..9, never acknowledged
	// The registry moves the producer from old to new.
	s.SetAssignment([]string{"new"})
	for _, path := range []string{"/v1/collectors/old/page", "/v1/collectors/old/page?token=" + held.page.Token} {
		if rp := httpDo(t, http.MethodGet, hs.URL+path, ""); rp.status != http.StatusForbidden {
			t.Fatalf("late GET %s from the old collector: %d", path, rp.status)
		}
	}
	if rp := httpDo(t, http.MethodPost, hs.URL+"/v1/collectors/old/ack?token="+held.page.Token, ""); rp.status != http.StatusForbidden {
		t.Fatalf("late ack from the old collector: %d", rp.status)
	}
	st := s.Stats()
	if _, ok := st.Collectors["old"]; ok || len(st.Collectors) != 1 {
		t.Fatalf("cursors after the move: %v", st.Collectors)
	}
	// The new collector gets everything old had not acknowledged, and its
	// acknowledgements release it all.
	tok, got := "", 0
	for {
		rp := httpPage(t, hs.URL, "", "new", tok, 7, 0, true)
		if rp.status != 200 {
			t.Fatalf("new: %d %s", rp.status, rp.errMsg)
		}
		got += len(rp.page.Samples)
		if rp.page.Token == "" {
			break
		}
		tok = rp.page.Token
	}
	if st := s.Stats(); got != 30 || st.Released != 30 || st.Pending != 0 || st.Dropped != 0 {
		t.Fatalf("new collector got %d; %+v", got, st.BufferStats)
	}
}

// TestPageByteLimitOverHTTP: a page never exceeds the request's limit or
// max_bytes in the encoding asked for, except a single sample larger than
// max_bytes, which is served alone; a held page larger than a new request's
// limits is re-cut; every sample arrives exactly once, in order.
func TestPageByteLimitOverHTTP(t *testing.T) {
	for _, accept := range []string{pa.ContentTypeBinary, pa.ContentTypeBinaryV2, pa.ContentTypeBinaryV3, ""} {
		t.Run(fmt.Sprintf("accept=%q", accept), func(t *testing.T) {
			s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
			samples := fleet(300, 0)
			big := fleet(1, 300)[0] // one sample far larger than any limit below
			big.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 20_000)}
			samples = append(samples[:150:150], append([]pa.Sample{big}, samples[150:]...)...)
			if err := s.Add(samples); err != nil {
				t.Fatal(err)
			}
			// A first request with generous limits, not acknowledged: then
			// the collector restarts asking for less; the held page is re-cut.
			first := httpPageAs(t, hs.URL, "", "c", "", 100, 0, accept)
			if len(first.page.Samples) != 100 {
				t.Fatalf("first page: %d samples", len(first.page.Samples))
			}
			recut := httpPageAs(t, hs.URL, "", "c", "", 100, 3000, accept)
			if len(recut.body) > 3000 || len(recut.page.Samples) == 0 || len(recut.page.Samples) >= 100 || recut.page.Token == first.page.Token {
				t.Fatalf("re-cut page: %d bytes, %d samples, token changed %v", len(recut.body), len(recut.page.Samples), recut.page.Token != first.page.Token)
			}
			// The old token no longer releases anything.
			if rp := httpDo(t, http.MethodPost, hs.URL+"/v1/collectors/c/ack?token="+first.page.Token, ""); rp.status != http.StatusConflict {
				t.Fatalf("ack of the page before the re-cut: %d", rp.status)
			}
			var got []int64
			rp, bigAlone := recut, false
			for pages := 0; rp.page.Token != ""; pages++ {
				if pages > 10_000 {
					t.Fatal("no end")
				}
				for i := range rp.page.Samples {
					got = append(got, rp.page.Samples[i].TimestampNs)
				}
				limit, maxBytes := 1+pages%40, 1500+pages*37%4000
				rp = httpPageAs(t, hs.URL, "", "c", rp.page.Token, limit, maxBytes, accept)
				if rp.status != 200 {
					t.Fatalf("page %d: %d %s", pages, rp.status, rp.errMsg)
				}
				n := len(rp.page.Samples)
				if n > limit || (len(rp.body) > maxBytes && n != 1) {
					t.Fatalf("page with limit %d, max_bytes %d: %d samples in %d bytes", limit, maxBytes, n, len(rp.body))
				}
				if len(rp.body) > maxBytes {
					bigAlone = n == 1 && rp.page.Samples[0].TimestampNs == 300
					if !bigAlone {
						t.Fatalf("a %d-byte page for max_bytes %d", len(rp.body), maxBytes)
					}
				}
			}
			if !bigAlone {
				t.Fatal("the sample larger than max_bytes was never served alone")
			}
			if len(got) != 301 {
				t.Fatalf("got %d samples, want 301", len(got))
			}
			for i, ts := range got {
				want := int64(i)
				if i == 150 {
					want = 300
				} else if i > 150 {
					want = int64(i - 1)
				}
				if ts != want {
					t.Fatalf("sample %d has timestamp %d, want %d", i, ts, want)
				}
			}
			if st := s.Stats(); st.Released != 301 || st.Pending != 0 {
				t.Fatalf("%+v", st.BufferStats)
			}
		})
	}
}

// TestEmptyAssignmentKeepsTheCollectors: the registry answers [] when it
// sees no live collector (a partition); collectors running on their cached
// assignment keep being served, their cursors stay pinned, and nothing is
// released or dropped for them.
func TestEmptyAssignmentKeepsTheCollectors(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
	s.SetAssignment([]string{"c1", "c2"})
	s.Add(fleet(20, 0))
	s.SetAssignment(nil)
	s.SetAssignment([]string{})
	for _, c := range []string{"c1", "c2"} {
		tok, got := "", 0
		for {
			rp := httpPage(t, hs.URL, "", c, tok, 7, 0, true)
			if rp.status != 200 {
				t.Fatalf("%s after an empty assignment: %d %s", c, rp.status, rp.errMsg)
			}
			got += len(rp.page.Samples)
			if rp.page.Token == "" {
				break
			}
			tok = rp.page.Token
		}
		if got != 20 {
			t.Fatalf("%s got %d samples, want 20", c, got)
		}
	}
	st := s.Stats()
	if len(st.Collectors) != 2 || !st.Collectors["c1"].Pinned || st.Dropped != 0 || st.Released != 20 {
		t.Fatalf("after an empty assignment: %+v %+v", st.BufferStats, st.Collectors)
	}
	if rp := httpPage(t, hs.URL, "", "stranger", "", 10, 0, true); rp.status != http.StatusForbidden {
		t.Fatalf("stranger after an empty assignment: %d", rp.status)
	}
}

// TestDeletedPinnedCursorComesBackPinned: an operator's DELETE of an
// assigned or configured collector's cursor; when it asks again its new
// cursor is pinned (never expires) as before.
func TestDeletedPinnedCursorComesBackPinned(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		opts pa.ServerOptions
		set  []string
	}{
		{"assigned", pa.ServerOptions{CursorTTL: time.Minute, Logger: quiet}, []string{"c"}},
		{"configured", pa.ServerOptions{CursorTTL: time.Minute, Collectors: []string{"c"}, Logger: quiet}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, hs := newProducer(t, tc.opts)
			pa.SetClock(s, func() time.Time { return now })
			if tc.set != nil {
				s.SetAssignment(tc.set)
			}
			s.Add(fleet(10, 0))
			if rp := httpDo(t, http.MethodDelete, hs.URL+"/v1/collectors/c", ""); rp.status != 200 {
				t.Fatalf("DELETE: %d %s", rp.status, rp.errMsg)
			}
			if rp := httpPage(t, hs.URL, "", "c", "", 5, 0, true); rp.status != 200 {
				t.Fatalf("after DELETE: %d %s", rp.status, rp.errMsg)
			}
			if st := s.Stats(); !st.Collectors["c"].Pinned {
				t.Fatalf("recreated cursor not pinned: %+v", st.Collectors)
			}
			now = now.Add(time.Hour)
			if st := s.Stats(); len(st.Collectors) != 1 || st.Expired != 0 {
				t.Fatalf("a pinned collector's cursor expired: %+v, %d expired", st.Collectors, st.Expired)
			}
		})
	}
}
