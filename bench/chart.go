package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteSVG draws the result's time series as stacked line charts (one panel
// per series, shared time axis). It writes nothing useful for results
// without series.
func (r *Result) WriteSVG(w io.Writer) error {
	names := make([]string, 0, len(r.Series))
	for n, pts := range r.Series {
		if len(pts) > 1 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	const width, panelH, left, right, top, gap = 900, 150, 90, 20, 40, 40
	height := top + len(names)*(panelH+gap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">holdfast bench %s — %s</text>`+"\n", left, r.Scenario, escape(r.Started.UTC().Format("2006-01-02 15:04 UTC")))
	var tmax float64
	for _, n := range names {
		for _, p := range r.Series[n] {
			tmax = max(tmax, p.T)
		}
	}
	plotW := float64(width - left - right)
	for i, n := range names {
		pts := r.Series[n]
		y0 := float64(top + i*(panelH+gap))
		var vmax float64
		for _, p := range pts {
			vmax = max(vmax, p.V)
		}
		if vmax == 0 {
			vmax = 1
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0+12, escape(n))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#888"/>`+"\n", left, y0+panelH, width-right, y0+panelH)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#888"/>`+"\n", left, y0+20, left, y0+panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`+"\n", left-6, y0+24, short(vmax))
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">0</text>`+"\n", left-6, y0+panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.0f s</text>`+"\n", width-right, y0+panelH+16, tmax)
		var path strings.Builder
		for j, p := range pts {
			x := float64(left) + p.T/max(tmax, 1)*plotW
			y := y0 + panelH - p.V/vmax*(panelH-20)
			if j == 0 {
				fmt.Fprintf(&path, "M%.1f,%.1f", x, y)
			} else {
				fmt.Fprintf(&path, " L%.1f,%.1f", x, y)
			}
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#1f6feb" stroke-width="1.5"/>`+"\n", path.String())
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.1f", v)
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
