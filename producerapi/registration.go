package producerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/holdfast/holdfast/internal/backoff"
)

// RegistrationOptions say how a Server registers with a registry.
type RegistrationOptions struct {
	RegistryURL string        // e.g. http://127.0.0.1:9400
	Address     string        // the URL collectors reach this producer at
	Interval    time.Duration // how often collectors should collect
	Kind        string        // free text, e.g. "demo"
	BackoffMax  time.Duration // cap of the retry delay while the registry is down; default 30 s
	HTTP        *http.Client  // default http.DefaultClient
	// Token, if set, is sent as a bearer token: a registry started with
	// --auth-token refuses registrations without it.
	Token string
	// Deregister, if true, deletes the registration when ctx ends (a normal
	// shutdown), so collectors stop asking at once rather than after the lease.
	Deregister bool
}

type registrationBody struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Interval string `json:"interval"`
	Kind     string `json:"kind,omitempty"`
}

type assignmentBody struct {
	ID         string `json:"id"`
	Collectors []struct {
		ID      string `json:"id"`
		Address string `json:"address"`
	} `json:"collectors"`
	LeaseSeconds float64 `json:"lease_seconds"`
}

// RunRegistration registers the producer with the registry and renews the
// registration at a third of its lease until ctx ends. While the registry is
// down it retries with capped exponential backoff and keeps serving the
// collectors it has. When the registry assigns collectors, samples are held
// for new ones before old ones are let go, so what an old collector had not
// acknowledged goes to the new one; from the first assignment on, only
// assigned collectors are served (see SetAssignment).
func (s *Server) RunRegistration(ctx context.Context, opts RegistrationOptions) error {
	if opts.RegistryURL == "" || opts.Address == "" || opts.Interval <= 0 {
		return fmt.Errorf("producerapi: RunRegistration needs RegistryURL, Address and Interval")
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	hc := opts.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	body, _ := json.Marshal(registrationBody{ID: s.opts.ID, Address: opts.Address, Interval: opts.Interval.String(), Kind: opts.Kind})
	const retryMin = 500 * time.Millisecond
	failures := 0 // consecutive, since the last success
	backoffMax := opts.BackoffMax
	var last time.Time
	for {
		last = time.Now()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		a, err := postRegistration(rctx, hc, opts.RegistryURL, opts.Token, body)
		cancel()
		var wait time.Duration
		if err != nil {
			wait = backoff.Exp(retryMin, backoffMax, failures)
			failures++
			if ctx.Err() == nil {
				s.log.Warn("registry unreachable; serving the current collectors", "err", err, "retry_in", wait)
			}
		} else {
			s.applyAssignment(a)
			failures = 0
			wait = max(100*time.Millisecond, time.Duration(a.LeaseSeconds*float64(time.Second))/3)
			// While the registry is down, retry at least as often as renewals
			// are due: a restarted registry gives everyone one lease to
			// renew, and a producer that backed off longer would expire and
			// be reassigned.
			backoffMax = max(100*time.Millisecond, min(opts.BackoffMax, wait))
		}
		select {
		case <-ctx.Done():
			if opts.Deregister {
				dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				req, _ := http.NewRequestWithContext(dctx, http.MethodDelete, strings.TrimSuffix(opts.RegistryURL, "/")+"/v1/producers/"+url.PathEscape(s.opts.ID), nil)
				if opts.Token != "" {
					req.Header.Set("Authorization", "Bearer "+opts.Token)
				}
				if resp, err := hc.Do(req); err == nil {
					resp.Body.Close()
				}
				cancel()
			}
			return nil
		case <-time.After(wait):
		case <-s.kick:
			// An unassigned collector asked: renew now, at most once a
			// second, so strangers cannot make the producer flood the registry.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second - time.Since(last)):
			}
		}
	}
}

func (s *Server) applyAssignment(a assignmentBody) {
	ids := make([]string, 0, len(a.Collectors))
	for _, c := range a.Collectors {
		ids = append(ids, c.ID)
	}
	s.SetAssignment(ids)
}

func postRegistration(ctx context.Context, hc *http.Client, base, token string, body []byte) (assignmentBody, error) {
	var a assignmentBody
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/producers", bytes.NewReader(body))
	if err != nil {
		return a, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("registry answered %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, fmt.Errorf("decoding the registry's answer: %w", err)
	}
	return a, nil
}
