package forwarder

import (
	"context"

	pa "github.com/holdfast/holdfast/producerapi"
)

// Delivery beside reading. A full batch is delivered (inserted,
// checkpointed, the WAL truncated: flush) by a goroutine while the Run
// goroutine reads and scans the next batch, so scanning costs no time the
// INSERTs do not already take. At most one delivery is in flight: the next
// one starts after it is joined, so checkpoints still move in WAL order and
// a batch is still whole records.
//
// What the two goroutines share, and how:
//   - The writer's caches of written keys and schemas (seenKeys,
//     seenSchemas) are read by both and written only by the Run goroutine,
//     when it joins a delivery that inserted its whole batch (markSeen);
//     the delivery's writer copy defers (deferSeen). A delivery that
//     bisected marks nothing: later batches write those fields again,
//     which the ReplacingMergeTrees absorb.
//   - The batch being delivered is the delivery's; the Run goroutine only
//     reads its new keys (writer.inflight), so a timeseries of the next
//     batch whose key the in-flight batch gives another timeseries is
//     refused as a collision, as if that batch were written.
//   - Everything else the delivery touches is its own (a writer copy with
//     its own scratch space and name interner, its own decoder for
//     bisection's re-reads) or safe for concurrent use (the connection
//     pool, Pebble, the quarantine store, the WAL, status under f.mu).
//   - The kept measurements batches (writer.batches) and the fields
//     INSERTs' name columns (writer.fieldNames) are shared by the
//     deliveries' writer copies, which run one at a time; the Run
//     goroutine inserts nothing.
type flight struct {
	b    *batch
	done chan error
	dw   *writer
	dec  *pa.SampleDecoder
}

// startFlush joins the delivery in flight, if any, then starts delivering
// *b and gives the Run goroutine an empty batch in its place.
func (f *Forwarder) startFlush(ctx context.Context, b **batch) error {
	if err := f.join(); err != nil {
		return err
	}
	full := *b
	fl := &flight{b: full, done: make(chan error, 1), dw: f.w.forDelivery(), dec: pa.NewSampleDecoder()}
	f.w.inflight = full.rows.newKeys
	f.flight = fl
	go func() { fl.done <- f.flushWith(ctx, full, fl) }()
	next := f.spare
	if next == nil {
		next = &batch{}
		next.reset()
	}
	f.spare = nil
	next.last = full.last
	*b = next
	if f.opts.SerialDelivery {
		return f.join()
	}
	return nil
}

// join waits for the delivery in flight, if any, marks its keys written
// when it delivered its whole batch, and keeps the batch as the spare.
func (f *Forwarder) join() error {
	fl := f.flight
	if fl == nil {
		return nil
	}
	err := <-fl.done
	f.flight = nil
	f.w.inflight = nil
	if err == nil && !fl.dw.bisected && f.Status().CheckpointIndex >= fl.b.last {
		if n := f.w.markSeen(fl.b.rows); n != 0 && n&(n-1) == 0 { // 1, 2, 4, 8...: loud at first, then rarely
			f.log.Warn("the written-key set was full and started over: every timeseries' fields rows are written again; raise MaxSeenKeys (--max-seen-keys) above the fleet's timeseries",
				"max_seen_keys", f.w.maxSeen, "times", n)
		}
		f.renewSeenEpoch()
	}
	fl.b.reset()
	f.spare = fl.b
	if err != nil {
		return err
	}
	err = f.sweepSessions(f.Status().CheckpointIndex)
	f.m.sessionsLoaded.Set(float64(f.sess.loaded))
	f.m.sessionIDs.Set(float64(f.sess.ids))
	return err
}
