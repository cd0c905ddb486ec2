package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/holdfast/holdfast/collector"
)

// runStatus prints a one-line summary of a running collector, once or every
// --watch interval; with --until-samples it exits once that many samples are
// collected and forwarded.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "127.0.0.1:9464", "the collector's admin address")
	watch := fs.Duration("watch", 0, "print a line every interval (0: once)")
	until := fs.Uint64("until-samples", 0, "with --watch: exit once this many samples are collected and nothing is waiting")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --until-samples: give up after this long")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	began := time.Now()
	for {
		st, err := fetchStatus(client, *admin)
		if err != nil {
			// While watching, give a collector that is starting a moment.
			if *watch == 0 || time.Since(began) > 10*time.Second {
				fmt.Fprintf(stderr, "holdfast status: %v\n", err)
			}
			if *watch == 0 {
				return 1
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
		if *watch == 0 {
			return 0
		}
		if *until > 0 && time.Since(began) > *timeout {
			fmt.Fprintf(stderr, "holdfast status: %d samples not collected and forwarded within %v\n", *until, *timeout)
			return 1
		}
		time.Sleep(*watch)
	}
}

func fetchStatus(client *http.Client, admin string) (collector.Status, error) {
	var st collector.Status
	resp, err := client.Get("http://" + admin + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
