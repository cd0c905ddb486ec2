package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/holdfast/holdfast/collector"
)

// runStatus shows collectors and, with --registry, the whole fleet: every
// registered collector, its producers (state, last success, lag, errors),
// unassigned and expired producers. It exits 0 only if everything is
// healthy, 1 otherwise, 2 on usage errors. With --watch it prints a one-line
// summary of one collector every interval (--until-samples: until that many
// samples are collected and forwarded).
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: holdfast status [--registry URL] [COLLECTOR ...]   (URL or HOST:PORT)\n       holdfast status [--admin ADDR] --watch D [--until-samples N] [--timeout D]\n")
		fs.PrintDefaults()
	}
	admin := fs.String("admin", "", "a collector's admin address, URL or HOST:PORT (default 127.0.0.1:9464 when nothing else is named)")
	registryURL := fs.String("registry", "", "the registry, URL or HOST:PORT: show every collector it knows and their producers")
	format := fs.String("format", "text", "text or json")
	reqTimeout := fs.Duration("request-timeout", 5*time.Second, "deadline of each HTTP request")
	watch := fs.Duration("watch", 0, "print a line every interval (0: once)")
	until := fs.Uint64("until-samples", 0, "with --watch: exit once this many samples are collected and nothing is waiting")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --until-samples: give up after this long")
	// Flags may follow the collectors named (`holdfast status HOST:PORT
	// --format json`), as with quarantine's ids.
	named, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	var addrs []string
	if *admin != "" {
		named = append([]string{*admin}, named...)
	}
	for _, a := range named {
		base, err := normalizeBase(a)
		if err != nil {
			fmt.Fprintf(stderr, "holdfast status: collector address %v\n", err)
			return 2
		}
		addrs = append(addrs, base)
	}
	reg := ""
	if *registryURL != "" {
		var err error
		if reg, err = normalizeBase(*registryURL); err != nil {
			fmt.Fprintf(stderr, "holdfast status: --registry: %v\n", err)
			return 2
		}
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "holdfast status: --format %q: want text or json\n", *format)
		return 2
	}
	if len(addrs) == 0 && reg == "" {
		addrs = []string{"http://127.0.0.1:9464"}
	}
	if *watch == 0 {
		if *until > 0 {
			fmt.Fprintln(stderr, "holdfast status: --until-samples needs --watch")
			return 2
		}
		v := gatherFleet(context.Background(), &http.Client{}, reg, addrs, *reqTimeout)
		if *format == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(v)
		} else {
			v.print(stdout, time.Now())
		}
		if len(v.Problems) > 0 {
			return 1
		}
		return 0
	}
	if reg != "" || len(addrs) != 1 {
		fmt.Fprintln(stderr, "holdfast status: --watch follows exactly one collector (no --registry)")
		return 2
	}
	base := addrs[0]
	client := &http.Client{Timeout: 5 * time.Second}
	began := time.Now()
	for {
		st, err := fetchStatus(client, base)
		if err != nil {
			// Give a collector that is starting a moment.
			if time.Since(began) > 10*time.Second {
				fmt.Fprintf(stderr, "holdfast status: %v\n", err)
			}
		} else {
			var samples, drops uint64
			failing := 0
			for _, p := range st.Producers {
				samples += p.Samples
				drops += p.ProducerDropped
				if p.ConsecutiveFailures > 0 {
					failing++
				}
			}
			cp := st.Checkpoint
			line := fmt.Sprintf("[%5.1fs] %s: collected %d samples from %d producer(s), WAL records %d, forwarded through %d, backlog %d records (%.1f MiB)",
				time.Since(began).Seconds(), st.State, samples, len(st.Producers), cp.WALLastIndex, cp.CheckpointIndex, cp.BacklogRecords, float64(cp.BacklogBytes)/(1<<20))
			if failing > 0 {
				line += fmt.Sprintf(", %d producer(s) failing", failing)
			}
			if drops > 0 {
				line += fmt.Sprintf(", producers dropped %d", drops)
			}
			if cp.LastInsertError != "" {
				line += ", ClickHouse: " + cp.LastInsertError
			}
			fmt.Fprintln(stdout, line)
			if *until > 0 && samples >= *until && cp.BacklogRecords == 0 {
				return 0
			}
		}
		if *until > 0 && time.Since(began) > *timeout {
			fmt.Fprintf(stderr, "holdfast status: %d samples not collected and forwarded within %v\n", *until, *timeout)
			return 1
		}
		time.Sleep(*watch)
	}
}

func fetchStatus(client *http.Client, base string) (collector.Status, error) {
	var st collector.Status
	resp, err := client.Get(base + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
