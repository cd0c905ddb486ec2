package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"slices"
)

// The registry and the producer have one setting that can change while
// they run, the log level; everything else is wired into their state at
// start-up. On SIGHUP they parse their command line and --config file
// again, exactly as at start-up, into a fresh copy of their FlagSet: a bad
// file is refused with a log line (nothing changes), a good one sets the
// log level and names the keys whose new values need a restart.

// flagSnapshot is every flag's value as text.
func flagSnapshot(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

// freshFlagSet is a FlagSet with fs's flags at their defaults, each a new
// value of the same type, so parsing into it does not touch fs.
func freshFlagSet(fs *flag.FlagSet) *flag.FlagSet {
	n := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	n.SetOutput(io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		v := cloneValue(f.Value)
		if v == nil {
			return
		}
		if l, ok := v.(listValue); ok {
			l.reset()
		} else {
			_ = v.Set(f.DefValue) // a default that does not parse back is the zero value, as at start
		}
		n.Var(v, f.Name, f.Usage)
	})
	return n
}

// reloadLevelOnHUP installs the SIGHUP handler described above. started is
// flagSnapshot of the live FlagSet right after start-up parsing.
func (d daemonConfig) reloadLevelOnHUP(ctx context.Context, log *slog.Logger, lvl *slog.LevelVar, live *flag.FlagSet, args []string, started map[string]string) {
	onHUP(ctx, func() {
		fresh := freshFlagSet(live)
		if _, err := d.parse(fresh, args); err != nil {
			log.Error("SIGHUP received; configuration reload refused, nothing changed", "err", err)
			return
		}
		path := configPath(fresh)
		if path == "" {
			log.Info("SIGHUP received; no --config file, nothing to reload")
			return
		}
		level, err := parseLogLevel(fresh.Lookup("log.level").Value.String())
		if err != nil {
			log.Error("SIGHUP received; configuration reload refused, nothing changed", "err", err)
			return
		}
		now := flagSnapshot(fresh)
		var restart []string
		for name, v := range now {
			if name != "log.level" && v != started[name] {
				restart = append(restart, d.key(name))
			}
		}
		slices.Sort(restart)
		lvl.Set(level)
		log.Info("SIGHUP received; configuration reloaded", "config", path, "log_level", level,
			"changed_needing_restart", restart)
	})
}
