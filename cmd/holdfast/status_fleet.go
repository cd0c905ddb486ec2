package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/registry"
)

// normalizeBase (its errors wrap addr.go's errBadAddress: a usage error)
// turns what an operator types for a daemon (http://h:p,
// https://h:p/prefix/, or plain h:p) into one base URL without a trailing
// slash, so `holdfast status 127.0.0.1:9464` and `holdfast status
// http://127.0.0.1:9464/` mean the same thing everywhere in this command.
func normalizeBase(s string) (string, error) {
	s = strings.TrimSpace(s)
	bad := func() (string, error) {
		return "", fmt.Errorf("%w: %q: want http://HOST:PORT or HOST:PORT", errBadAddress, s)
	}
	if s == "" || strings.ContainsAny(s, "?#") || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return bad()
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || strings.Contains(host, "/") {
			return bad()
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad()
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return bad()
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// fleetView is what `holdfast status` gathered: the registry's view (if
// asked) and each collector's own status.
type fleetView struct {
	Registry    string              `json:"registry,omitempty"`
	RegistryErr string              `json:"registry_error,omitempty"`
	Collectors  []collectorView     `json:"collectors"`
	Unassigned  []registry.Producer `json:"unassigned,omitempty"` // registered producers with no collector
	Expired     []map[string]any    `json:"expired,omitempty"`
	ExpiredNote string              `json:"expired_note,omitempty"` // why expired producers are not shown
	Problems    []string            `json:"problems"`
	registered  map[string]registry.Producer
}

// collectorView is one collector as the registry and its own API see it.
type collectorView struct {
	ID         string            `json:"id"`
	Address    string            `json:"address"`
	InRegistry bool              `json:"in_registry"`
	Live       bool              `json:"live"`     // its registry lease is current
	Assigned   int               `json:"assigned"` // producers the registry assigned it
	Err        string            `json:"error,omitempty"`
	Status     *collector.Status `json:"status,omitempty"`
}

// gatherFleet asks the registry (if any) for its collectors and producers,
// then every collector (from the registry and from addrs) for /v1/status,
// concurrently, each request under timeout.
func gatherFleet(ctx context.Context, hc *http.Client, registryURL string, addrs []string, timeout time.Duration) *fleetView {
	v := &fleetView{Registry: registryURL, Collectors: []collectorView{}, Problems: []string{}}
	seen := map[string]bool{}
	if registryURL != "" {
		infos, err := listRegistryCollectors(ctx, hc, registryURL, timeout)
		if err == nil {
			v.registered, err = listRegistryProducers(ctx, hc, registryURL, timeout)
		}
		if err != nil {
			v.RegistryErr = err.Error()
			v.Problems = append(v.Problems, fmt.Sprintf("registry %s: %v", registryURL, err))
		}
		for _, c := range infos {
			base, err := normalizeBase(c.Address)
			cv := collectorView{ID: c.ID, Address: c.Address, InRegistry: true, Live: c.Live, Assigned: c.Producers}
			if err != nil {
				cv.Err = "the registry has no usable admin address for it: " + err.Error()
			} else {
				cv.Address = base
				seen[base] = true
			}
			v.Collectors = append(v.Collectors, cv)
		}
		for _, p := range v.registered {
			if len(p.Collectors) == 0 {
				v.Unassigned = append(v.Unassigned, p)
			}
		}
		sort.Slice(v.Unassigned, func(i, j int) bool { return v.Unassigned[i].ID < v.Unassigned[j].ID })
		if v.RegistryErr == "" {
			v.Expired, v.ExpiredNote = listExpired(ctx, hc, registryURL, timeout)
		}
	}
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			v.Collectors = append(v.Collectors, collectorView{Address: a})
		}
	}
	var wg sync.WaitGroup
	for i := range v.Collectors {
		cv := &v.Collectors[i]
		if cv.Err != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st collector.Status
			if err := getJSONCtx(ctx, hc, cv.Address+"/v1/status", timeout, &st); err != nil {
				cv.Err = err.Error()
				return
			}
			cv.Status = &st
			if cv.ID == "" {
				cv.ID = st.CollectorID
			}
		}()
	}
	wg.Wait()
	v.judge(time.Now())
	return v
}

// judge lists every reason the fleet is not healthy. Backpressure (the WAL at
// its budget, producers keeping their data) is shown but is a state, not ill
// health: nothing is lost and it clears by itself when ClickHouse catches up.
func (v *fleetView) judge(now time.Time) {
	add := func(format string, args ...any) { v.Problems = append(v.Problems, fmt.Sprintf(format, args...)) }
	for _, cv := range v.Collectors {
		name := cv.ID
		if name == "" {
			name = cv.Address
		}
		if cv.InRegistry && !cv.Live {
			add("collector %s: registry lease expired", name)
		}
		if cv.Err != "" {
			add("collector %s: unreachable: %s", name, cv.Err)
			continue
		}
		st := cv.Status
		switch st.State {
		case "running", "backpressure":
		default:
			add("collector %s: state %s", name, st.State)
		}
		if st.WALFailed != "" {
			add("collector %s: WAL failed: %s", name, st.WALFailed)
		}
		if e := st.Checkpoint.LastInsertError; e != "" {
			add("collector %s: ClickHouse insert failing: %s", name, e)
		} else if e := st.Forwarder.StartupError; e != "" {
			add("collector %s: ClickHouse: %s", name, e)
		}
		if st.Registry != nil && st.Registry.LastRefreshError != "" {
			add("collector %s: registry refresh failing: %s", name, st.Registry.LastRefreshError)
		}
		if st.Quarantine.Full {
			add("collector %s: quarantine full (%d entries not kept)", name, st.Quarantine.Overflow)
		}
		for _, p := range st.Producers {
			if p.ConsecutiveFailures > 0 && !v.moving(cv, p) {
				add("producer %s on %s: %d failed attempt(s): %s", p.ID, name, p.ConsecutiveFailures, p.LastError)
			}
		}
	}
	for _, p := range v.Unassigned {
		add("producer %s: registered but assigned to no collector", p.ID)
	}
}

// moving says a producer's failures on this collector are a handoff in
// progress, not ill health: the registry has already assigned it elsewhere
// (a rebalancing move, or the collector's lease ran out), the producer has
// let this collector go, and this collector has not yet taken the new
// assignment (it refreshes every --refresh). A producer the registry no
// longer knows at all is not moving: it stopped renewing.
func (v *fleetView) moving(cv collectorView, p collector.ProducerStatus) bool {
	if p.Static || cv.ID == "" {
		return false
	}
	reg, ok := v.registered[p.ID]
	return ok && len(reg.Collectors) > 0 && !slices.Contains(reg.Collectors, cv.ID)
}

func listRegistryCollectors(ctx context.Context, hc *http.Client, base string, timeout time.Duration) ([]registry.CollectorInfo, error) {
	var out []registry.CollectorInfo
	token := ""
	for {
		var page registry.CollectorsPage
		if err := getJSONCtx(ctx, hc, base+"/v1/collectors?limit=1000&page_token="+url.QueryEscape(token), timeout, &page); err != nil {
			return out, err
		}
		out = append(out, page.Items...)
		if token = page.NextPageToken; token == "" {
			return out, nil
		}
	}
}

func listRegistryProducers(ctx context.Context, hc *http.Client, base string, timeout time.Duration) (map[string]registry.Producer, error) {
	out := map[string]registry.Producer{}
	token := ""
	for {
		var page registry.ProducersPage
		if err := getJSONCtx(ctx, hc, base+"/v1/producers?limit=1000&page_token="+url.QueryEscape(token), timeout, &page); err != nil {
			return out, err
		}
		for _, p := range page.Items {
			out[p.ID] = p
		}
		if token = page.NextPageToken; token == "" {
			return out, nil
		}
	}
}

// listExpired asks for producers whose lease ran out (GET
// /v1/producers?state=expired). A registry without that listing either
// refuses the parameter or ignores it and answers the live listing; items
// are taken as expired only when they say so (a "state" of "expired", or an
// "expired"/"expired_at" field), so the live producers of an older registry
// are never shown as dead.
func listExpired(ctx context.Context, hc *http.Client, base string, timeout time.Duration) ([]map[string]any, string) {
	var out []map[string]any
	token := ""
	for pages := 0; pages < 10; pages++ { // the first 10,000 are plenty on a terminal
		var page struct {
			Items         []map[string]any `json:"items"`
			NextPageToken string           `json:"next_page_token"`
		}
		err := getJSONCtx(ctx, hc, base+"/v1/producers?state=expired&limit=1000&page_token="+url.QueryEscape(token), timeout, &page)
		var he *httpStatusError
		if errors.As(err, &he) {
			return nil, "this registry does not list expired producers"
		}
		if err != nil {
			return nil, "listing expired producers: " + err.Error()
		}
		for _, it := range page.Items {
			_, hasExpired := it["expired"]
			_, hasExpiredAt := it["expired_at"]
			if it["state"] == "expired" || hasExpired || hasExpiredAt {
				out = append(out, it)
			}
		}
		if len(out) == 0 && len(page.Items) > 0 {
			return nil, "this registry does not list expired producers"
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	return out, ""
}

// httpStatusError is a non-200 answer.
type httpStatusError struct {
	URL    string
	Status string
	Body   string
}

func (e *httpStatusError) Error() string {
	if e.Body != "" {
		return fmt.Sprintf("GET %s: %s: %s", e.URL, e.Status, e.Body)
	}
	return fmt.Sprintf("GET %s: %s", e.URL, e.Status)
}

func getJSONCtx(ctx context.Context, hc *http.Client, u string, timeout time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &httpStatusError{URL: u, Status: resp.Status, Body: strings.TrimSpace(string(body[:min(len(body), 200)]))}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", u, err)
	}
	return nil
}
