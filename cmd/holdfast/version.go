package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Set by `make build` with -ldflags -X (git describe, date); a plain
// `go build ./cmd/holdfast` leaves them empty and buildInfo falls back to
// what the Go toolchain stamped into the binary (vcs.revision, vcs.time).
var (
	version   = ""
	revision  = ""
	buildDate = ""
)

// buildFacts is what `holdfast version` prints and holdfast_build_info carries.
type buildFacts struct {
	Version, Revision, GoVersion, BuildDate string
	Modified                                bool
}

func buildInfo() buildFacts {
	bi, _ := debug.ReadBuildInfo()
	return factsOf(version, revision, buildDate, bi)
}

// factsOf is what a binary says of itself: the -ldflags values where make
// build set them, else what the toolchain stamped (bi may be nil).
func factsOf(version, revision, buildDate string, bi *debug.BuildInfo) buildFacts {
	f := buildFacts{Version: version, Revision: revision, GoVersion: runtime.Version(), BuildDate: buildDate}
	if bi != nil {
		if f.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			f.Version = bi.Main.Version
		}
		// make build's version comes from git describe --dirty: when it
		// says -dirty already, "-modified" would say it twice ("abc-dirty
		// (revision: abc-modified)"). Any other version (make build
		// VERSION=v1.2.0, or a tree git describe calls clean but whose
		// untracked files were compiled in) keeps the toolchain's word.
		saidDirty := strings.HasSuffix(f.Version, "-dirty")
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if f.Revision == "" {
					f.Revision = s.Value
				}
			case "vcs.time":
				if f.BuildDate == "" {
					f.BuildDate = s.Value // the commit's time: the best date a plain go build knows
				}
			case "vcs.modified":
				f.Modified = s.Value == "true" && !saidDirty
			}
		}
	}
	if f.Version == "" {
		f.Version = "devel"
	}
	if f.Revision == "" {
		f.Revision = "unknown"
	}
	if f.BuildDate == "" {
		f.BuildDate = "unknown"
	}
	return f
}

// runVersion prints the version the way Prometheus' tools do.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintf(stderr, "holdfast version: unexpected argument %q\n", args[0])
		return 2
	}
	f := buildInfo()
	rev := f.Revision
	if f.Modified {
		rev += "-modified"
	}
	fmt.Fprintf(stdout, "holdfast, version %s (revision: %s)\n  build date:       %s\n  go version:       %s\n  platform:         %s/%s\n",
		f.Version, rev, f.BuildDate, f.GoVersion, runtime.GOOS, runtime.GOARCH)
	return 0
}

// newDaemonRegistry is a daemon's metrics registry: Go runtime and process
// metrics and holdfast_build_info.
func newDaemonRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	return reg
}

// registerBuildInfo adds holdfast_build_info{version,revision,goversion} 1,
// the ecosystem's way to tell from /metrics which build is running.
func registerBuildInfo(reg prometheus.Registerer) {
	f := buildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "holdfast_build_info",
		Help:        "A metric with a constant '1' value labeled by the version, revision and Go version holdfast was built from.",
		ConstLabels: prometheus.Labels{"version": f.Version, "revision": f.Revision, "goversion": f.GoVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
