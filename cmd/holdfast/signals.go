package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// onHUP calls reload for every SIGHUP until ctx ends. Installed before a
// daemon says it is up, so a SIGHUP never finds Go's default (exit 129).
func onHUP(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
}

// ignoreHUP is onHUP for daemons with nothing to reload yet: they log it.
func ignoreHUP(ctx context.Context, log *slog.Logger, daemon string) {
	onHUP(ctx, func() {
		log.Info("SIGHUP received; the " + daemon + " has no configuration file to reload, nothing changed")
	})
}
