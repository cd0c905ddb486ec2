package main

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/holdfast/holdfast/collector"
)

// collectorReloader re-reads the collector's --config file on SIGHUP. It
// parses the original command line and the file again, exactly as at
// start-up (same flag definitions, same checks, flags winning over the
// file), so a file is valid on reload iff it would be valid on a restart.
// What it applies in place: the static producers, their interval and the
// log level. The other keys need a restart; the log line says so. A file
// that does not parse or validate is refused whole with a log line; the
// running configuration stays.
type collectorReloader struct {
	args []string // the command line, without "collector"
	// config is the --config path the collector started with: what a
	// refused reload names when the file no longer parses.
	config string
	c      *collector.Collector
	log    *slog.Logger
	level  *slog.LevelVar

	// What runs now (the last applied file, or the flags).
	producers []string
	interval  time.Duration
}

func (r *collectorReloader) reload() {
	_, f, _, err := parseCollectorFlags(r.args, io.Discard)
	path := r.config
	if f != nil {
		path = *f.cf.file
	}
	if err == nil && path == "" {
		r.log.Info("SIGHUP received; no --config file, nothing to reload")
		return
	}
	r.log.Info("SIGHUP received; reloading the configuration", "config", path)
	refuse := func(err error) {
		r.log.Error("configuration reload refused; the running configuration stays", "err", err)
	}
	if err != nil {
		refuse(err)
		return
	}
	if *f.interval <= 0 {
		refuse(errors.New("interval must be a positive duration"))
		return
	}
	level, err := parseLogLevel(*f.log.level)
	if err != nil {
		refuse(err)
		return
	}
	producers, interval := []string(f.producers), *f.interval
	ps := make([]collector.ProducerConfig, 0, len(producers))
	for _, u := range producers {
		ps = append(ps, collector.ProducerConfig{URL: u, AuthToken: *f.producerToken, Interval: interval})
	}
	if err := r.c.SetStatic(ps); err != nil {
		refuse(err)
		return
	}
	r.level.Set(level)
	changed := !slices.Equal(producers, r.producers) || interval != r.interval
	r.producers, r.interval = producers, interval
	r.log.Info("configuration reloaded", "config", path, "static_producers", len(producers), "interval", interval,
		"log_level", level, "producers_changed", changed,
		"note", "other keys (addresses, directories, budgets, ClickHouse settings) take effect on restart")
}
