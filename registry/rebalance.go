package registry

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promutil"
)

// Rebalancing. Assignment is sticky (fill keeps a producer's live
// collectors), so a collector that joins, or comes back after its lease ran
// out, gets only new producers and the fleet stays uneven for good. The
// rebalancer moves producers from the most to the least loaded live
// collector until no two differ by more than one, a few at a time:
//
//   - At most Options.RebalancePerMinute moves in any minute (a sliding
//     window), and at most ceil(RebalancePerMinute/60) per call (Serve calls
//     it every second), so moves are spread out: each moved producer makes
//     its new collector drain what the producer held, and a burst of them
//     would be a thundering herd on one collector.
//   - A move is an assignment change like any other: the producer's next
//     renewal (or its refusal of the new collector, which makes it renew at
//     once) gives the new collector a cursor at the oldest sample it holds
//     before it lets the old one go (producerapi's SetAssignment), so what
//     the old collector had not acknowledged goes to the new one, and what
//     it had is in its WAL. Nothing is lost; a page the old collector wrote
//     but could not acknowledge is stored twice and read once (invariant 2).
//   - Only collectors heard from by this registry process within a lease
//     are targets: after a registry restart every stored collector gets a
//     lease of grace (Open), and a collector that is in fact gone must not
//     be given producers during it.
//   - The moves of one call are one synced batch; if it fails, nothing
//     moved.

// Move is one producer moved by the rebalancer.
type Move struct {
	Producer string `json:"producer"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// rebalancer is the rebalancer's state, guarded by Registry.mu.
type rebalancer struct {
	perMinute int
	window    []time.Time          // times of the moves in the last minute
	heard     map[string]time.Time // collector id → last registration or renewal this process took
	moves     prometheus.Counter
	set       *promutil.Set
}

func newRebalancer(perMinute int, reg prometheus.Registerer) (*rebalancer, error) {
	rb := &rebalancer{perMinute: perMinute, heard: map[string]time.Time{},
		moves: prometheus.NewCounter(prometheus.CounterOpts{Name: "holdfast_registry_rebalance_moves_total",
			Help: "Producers moved from a more to a less loaded collector by the rebalancer."})}
	var err error
	rb.set, err = promutil.Register(reg, rb.moves)
	return rb, err
}

// heardFrom notes a collector's registration or renewal (r.mu held).
func (r *Registry) heardFrom(id string, now time.Time) { r.rb.heard[id] = now }

// Rebalance moves up to its budget of producers toward an even load and
// returns the moves (none when the load is even, the budget is spent, or
// Options.RebalancePerMinute is 0).
func (r *Registry) Rebalance() ([]Move, error) {
	if r.rb.perMinute <= 0 {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	cut := 0
	for cut < len(r.rb.window) && !now.Before(r.rb.window[cut].Add(time.Minute)) {
		cut++
	}
	r.rb.window = r.rb.window[cut:]
	budget := min(r.rb.perMinute-len(r.rb.window), (r.rb.perMinute+59)/60)
	if budget <= 0 {
		return nil, nil
	}
	for id := range r.rb.heard {
		if _, ok := r.collectors[id]; !ok {
			delete(r.rb.heard, id) // expired: forget it
		}
	}
	var live, targets []string
	for id, c := range r.collectors {
		if !r.live(c, now) {
			continue
		}
		live = append(live, id)
		if h, ok := r.rb.heard[id]; ok && now.Sub(h) < r.opts.CollectorLease {
			targets = append(targets, id)
		}
	}
	if len(live) < 2 || len(targets) == 0 {
		return nil, nil
	}
	sort.Strings(live)
	sort.Strings(targets)
	src, dst := r.mostAndLeastLoaded(live, targets)
	if r.load[src]-r.load[dst] <= 1 {
		return nil, nil // even: the common case costs no scan of producers
	}
	// pick is src's producer with the lowest id that is not on dst: one
	// pass over the producers per move (a call moves a few), no sorting.
	pick := func(src, dst string) *Producer {
		var best *Producer
		bestID := ""
		for id, p := range r.producers {
			if (best == nil || id < bestID) && slices.Contains(p.Collectors, src) && !slices.Contains(p.Collectors, dst) {
				best, bestID = p, id
			}
		}
		return best
	}
	type undo struct {
		p   *Producer
		old []string
	}
	var moves []Move
	var undos []undo
	t := r.begin()
	for len(moves) < budget {
		src, dst = r.mostAndLeastLoaded(live, targets)
		if src == dst || r.load[src]-r.load[dst] <= 1 {
			break
		}
		p := pick(src, dst)
		if p == nil {
			break // every producer of src is on dst already (replicas > 1)
		}
		old := slices.Clone(p.Collectors)
		next := slices.Clone(p.Collectors)
		next[slices.Index(next, src)] = dst
		slices.Sort(next)
		r.setCollectors(t, p, next)
		undos = append(undos, undo{p, old})
		moves = append(moves, Move{Producer: p.ID, From: src, To: dst})
	}
	if err := t.commit(); err != nil {
		scratch := r.begin() // the in-memory state goes back; the batch is dropped
		for i := len(undos) - 1; i >= 0; i-- {
			r.setCollectors(scratch, undos[i].p, undos[i].old)
		}
		scratch.b.Close()
		return nil, fmt.Errorf("registry: rebalancing: %w", err)
	}
	for range moves {
		r.rb.window = append(r.rb.window, now)
	}
	r.rb.moves.Add(float64(len(moves)))
	return moves, nil
}

// mostAndLeastLoaded picks the live collector with the most producers and
// the target with the fewest (ties by id, so the choice is deterministic).
func (r *Registry) mostAndLeastLoaded(live, targets []string) (src, dst string) {
	src, dst = live[0], targets[0]
	for _, id := range live {
		if r.load[id] > r.load[src] {
			src = id
		}
	}
	for _, id := range targets {
		if r.load[id] < r.load[dst] {
			dst = id
		}
	}
	return src, dst
}

// logRebalance runs one rebalancing step from Serve's tick and logs it.
func (r *Registry) logRebalance(log *slog.Logger) {
	moves, err := r.Rebalance()
	if err != nil {
		log.Error("rebalancing", "err", err)
	}
	for _, m := range moves {
		log.Info("producer moved to even the load", "producer", m.Producer, "from", m.From, "to", m.To)
	}
}
