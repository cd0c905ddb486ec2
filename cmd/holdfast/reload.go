package main

import (
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/holdfast/holdfast/collector"
)

// collectorReloader re-reads the collector's --config file on SIGHUP. What
// it applies in place: the static producers, their interval and the log
// level (a flag given on the command line keeps winning). The other keys
// need a restart; a reload that changes one says so. A file that does not
// decode or validate is refused whole with a log line; the running
// configuration stays.
type collectorReloader struct {
	path  string
	set   map[string]bool
	c     *collector.Collector
	log   *slog.Logger
	level *slog.LevelVar
	token string

	// What runs now (the last applied file, or the flags).
	producers []string
	interval  time.Duration
}

func (r *collectorReloader) reload() {
	if r.path == "" {
		r.log.Info("SIGHUP received; no --config file, nothing to reload")
		return
	}
	r.log.Info("SIGHUP received; reloading the configuration", "config", r.path)
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.log.Error("configuration reload refused; the running configuration stays", "config", r.path, "err", err)
		return
	}
	cfg, err := decodeCollectorConfig(r.path, b)
	if err != nil {
		r.log.Error("configuration reload refused; the running configuration stays", "config", r.path, "err", err)
		return
	}
	producers, interval, level := r.producers, r.interval, r.level.Level()
	if !r.set["producer"] {
		producers = cfg.Producers
	}
	if !r.set["interval"] {
		interval = 10 * time.Second // the flag's default, for a file without the key
		if cfg.Interval != "" {
			if interval, err = time.ParseDuration(cfg.Interval); err != nil || interval <= 0 {
				r.log.Error("configuration reload refused; the running configuration stays", "config", r.path, "err", "interval "+cfg.Interval+" is not a positive duration")
				return
			}
		}
	}
	if !r.set["log.level"] {
		name := cfg.LogLevel
		if name == "" {
			name = "info"
		}
		if level, err = parseLogLevel(name); err != nil {
			r.log.Error("configuration reload refused; the running configuration stays", "config", r.path, "err", err)
			return
		}
	}
	ps := make([]collector.ProducerConfig, 0, len(producers))
	for _, u := range producers {
		ps = append(ps, collector.ProducerConfig{URL: u, AuthToken: r.token, Interval: interval})
	}
	if err := r.c.SetStatic(ps); err != nil {
		r.log.Error("configuration reload refused; the running configuration stays", "config", r.path, "err", err)
		return
	}
	r.level.Set(level)
	changed := !slices.Equal(producers, r.producers) || interval != r.interval
	r.producers, r.interval = producers, interval
	r.log.Info("configuration reloaded", "config", r.path, "static_producers", len(producers), "interval", interval,
		"log_level", level, "producers_changed", changed,
		"note", "other keys (addresses, directories, budgets, ClickHouse settings) take effect on restart")
}
