package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// logFlags are Prometheus' --log.level and --log.format, on every daemon.
type logFlags struct {
	level  *string
	format *string
}

func addLogFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		level:  fs.String("log.level", "info", "only log messages with the given severity or above: debug, info, warn, error"),
		format: fs.String("log.format", "logfmt", "output format of log messages: logfmt or json"),
	}
}

// logger builds the daemon's logger; lvl lets SIGHUP change the level later.
// An invalid value is an error naming the flag, for start-up to refuse.
func (l logFlags) logger(w io.Writer, lvl *slog.LevelVar) (*slog.Logger, error) {
	level, err := parseLogLevel(*l.level)
	if err != nil {
		return nil, err
	}
	lvl.Set(level)
	opts := &slog.HandlerOptions{Level: lvl}
	switch *l.format {
	case "logfmt":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log.format %q is not one of logfmt, json", *l.format)
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log.level %q is not one of debug, info, warn, error", s)
}
