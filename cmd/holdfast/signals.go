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

// signalContext is canceled by the first SIGTERM or SIGINT, which it logs
// by name, so a daemon's log says why it began to shut down. A second
// signal kills at once (Go's default once stop is called), for the
// operator who does not want to wait for a drain.
func signalContext(log *slog.Logger) (context.Context, context.CancelFunc) {
	return signalContextFrom(context.Background(), log)
}

// signalContextFrom is signalContext under parent.
func signalContextFrom(parent context.Context, log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			// Stop before anything else: from here on the default
			// (exit) applies, so a second signal sent after any later
			// step (the drain included) cannot be swallowed by sig.
			signal.Stop(sig)
			log.Info("shutdown: " + s.String() + " received; stopping (a second one exits at once)")
			cancel()
		case <-ctx.Done():
			signal.Stop(sig)
		}
	}()
	return ctx, cancel
}
