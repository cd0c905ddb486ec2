package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/holdfast/holdfast/internal/statushtml"
)

// print writes the fleet as tables: collectors, then each collector's
// producers, then unassigned and expired producers, then the verdict.
func (v *fleetView) print(w io.Writer, now time.Time) {
	if v.Registry != "" {
		live := 0
		for _, c := range v.Collectors {
			if c.InRegistry && c.Live {
				live++
			}
		}
		fmt.Fprintf(w, "registry %s: %d collector(s), %d live; %d producer(s) registered\n", v.Registry, len(v.Collectors), live, len(v.registered))
		if v.RegistryErr != "" {
			fmt.Fprintf(w, "  registry error: %s\n", v.RegistryErr)
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COLLECTOR\tADDRESS\tLEASE\tSTATE\tPRODUCERS\tBACKLOG\tFORWARD LAG\tLAST INSERT\tQUARANTINE")
	for _, c := range v.Collectors {
		lease := "-"
		if c.InRegistry {
			lease = "live"
			if !c.Live {
				lease = "EXPIRED"
			}
		}
		id := orDash(c.ID)
		if c.Status == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\tUNREACHABLE\t%s\t-\t-\t-\t-\n", id, c.Address, lease, assignedCount(c, -1))
			continue
		}
		st := c.Status
		cp := st.Checkpoint
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d rec (%s)\t%s\t%s\t%d\n", id, c.Address, lease, st.State, assignedCount(c, len(st.Producers)),
			cp.BacklogRecords, statushtml.Bytes(cp.BacklogBytes), statushtml.Seconds(cp.OldestUnforwarded), ago(now, cp.LastInsertTime), st.Quarantine.Entries)
	}
	tw.Flush()
	for _, c := range v.Collectors {
		if c.Status == nil {
			fmt.Fprintf(w, "\ncollector %s (%s): unreachable: %s\n", orDash(c.ID), c.Address, c.Err)
			continue
		}
		st := c.Status
		fmt.Fprintf(w, "\ncollector %s (%s): %d producer(s)\n", orDash(c.ID), c.Address, len(st.Producers))
		if len(st.Producers) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PRODUCER\tSTATE\tLAST SUCCESS\tLAG\tERRORS\tSAMPLES\tDROPPED\tREJECTED\tLAST ERROR")
		for _, p := range st.Producers {
			state := "ok"
			switch {
			case p.ConsecutiveFailures > 0 && v.moving(c, p):
				state = "moving"
			case p.ConsecutiveFailures > 0:
				state = "FAILING"
			case p.Backpressure:
				state = "backpressure"
			case p.LastSuccess.IsZero():
				state = "starting"
			}
			lag := "-"
			if !p.LastSuccess.IsZero() {
				lag = now.Sub(p.LastSuccess).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.ID, state, stamp(p.LastSuccess), lag, p.ConsecutiveFailures,
				p.Samples, p.ProducerDropped, p.RejectedSamples, oneLine(p.LastError, 80))
		}
		tw.Flush()
	}
	if len(v.Unassigned) > 0 {
		fmt.Fprintf(w, "\nunassigned producers (registered, no collector): %d\n", len(v.Unassigned))
		for _, p := range v.Unassigned {
			fmt.Fprintf(w, "  %s\t%s\n", p.ID, p.Address)
		}
	}
	if v.Registry != "" {
		switch {
		case v.ExpiredNote != "":
			fmt.Fprintf(w, "\nexpired producers: not shown (%s)\n", v.ExpiredNote)
		case len(v.Expired) == 0:
			fmt.Fprintln(w, "\nexpired producers: none")
		default:
			fmt.Fprintf(w, "\nexpired producers: %d\n", len(v.Expired))
			for _, it := range v.Expired {
				fmt.Fprintf(w, "  %s\n", describeExpired(it))
			}
		}
	}
	fmt.Fprintln(w)
	if len(v.Problems) == 0 {
		fmt.Fprintln(w, "HEALTHY")
		return
	}
	fmt.Fprintf(w, "UNHEALTHY: %d problem(s)\n", len(v.Problems))
	for _, p := range v.Problems {
		fmt.Fprintf(w, "  %s\n", oneLine(p, 200))
	}
}

// assignedCount shows what the collector collects, and what the registry
// assigned it when the two differ (a refresh not yet taken).
func assignedCount(c collectorView, collecting int) string {
	switch {
	case collecting < 0 && c.InRegistry:
		return fmt.Sprintf("(%d assigned)", c.Assigned)
	case collecting < 0:
		return "-"
	case c.InRegistry && c.Assigned != collecting:
		return fmt.Sprintf("%d (%d assigned)", collecting, c.Assigned)
	}
	return fmt.Sprint(collecting)
}

// describeExpired prints an expired producer: its id, when it expired and
// why, and which collectors had it, in whatever of those fields the
// registry gives.
func describeExpired(it map[string]any) string {
	parts := []string{fmt.Sprint(it["id"])}
	for _, k := range []string{"expired", "expired_at", "reason", "collectors", "address"} {
		v, ok := it[k]
		if !ok {
			continue
		}
		if l, ok := v.([]any); ok {
			strs := make([]string, len(l))
			for i := range l {
				strs[i] = fmt.Sprint(l[i])
			}
			v = strings.Join(strs, ",")
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return oneLine(strings.Join(parts, "  "), 200)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(100*time.Millisecond).String() + " ago"
}

// oneLine keeps a table row on one line: producer errors and names are
// outside input.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
