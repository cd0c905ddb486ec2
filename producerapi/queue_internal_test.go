package producerapi

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSampleQueueMatchesASlice: random pushes and pops across chunk
// boundaries keep the same samples, in the same order, as a plain slice.
func TestSampleQueueMatchesASlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var q sampleQueue
	var model []int64
	next := int64(0)
	for step := 0; step < 200_000; step++ {
		// Phases of growth and of draining, so the queue crosses chunk
		// boundaries both ways and empties now and then.
		grow := (step/10_000)%2 == 0
		if q.len() == 0 || (grow && rng.IntN(4) != 0) || (!grow && rng.IntN(4) == 0) {
			q.push(bufSample{s: Sample{TimestampNs: next}, size: int(next)})
			model = append(model, next)
			next++
		} else {
			if got := q.front().s.TimestampNs; got != model[0] {
				t.Fatalf("step %d: front %d, want %d", step, got, model[0])
			}
			q.pop()
			model = model[1:]
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(model))
		}
		if len(model) > 0 {
			i := rng.IntN(len(model))
			if got := q.at(i).s.TimestampNs; got != model[i] {
				t.Fatalf("step %d: at(%d) = %d, want %d", step, i, got, model[i])
			}
		}
	}
}

// TestSampleQueueNeverMovesASample: a sample's address is the same however
// many are pushed after it (the slice it replaced copied them all at each
// growth), and an emptied queue holds no chunk.
func TestSampleQueueNeverMovesASample(t *testing.T) {
	var q sampleQueue
	q.push(bufSample{size: 1, s: Sample{Metric: Named{Name: "m"}}})
	first := q.at(0)
	for i := 0; i < 10*queueChunk; i++ {
		q.push(bufSample{size: 2, s: Sample{Metric: Named{Name: "m"}}})
		if i%queueChunk == 0 && q.at(0) != first {
			t.Fatalf("after %d pushes the oldest sample moved", i+1)
		}
	}
	const midIndex = 8 * queueChunk
	mid := q.at(midIndex)
	popped := 0
	for q.len() > 4*queueChunk {
		q.pop()
		popped++
	}
	if q.at(midIndex-popped) != mid {
		t.Fatal("a sample moved when older ones were popped")
	}
	// The chunk emptied last is the spare: its slots were cleared, so the
	// strings they held can be collected.
	if q.spare == nil {
		t.Fatal("no spare chunk after whole chunks were popped")
	}
	for i, s := range q.spare[:cap(q.spare)] {
		if !reflect.DeepEqual(s, bufSample{}) {
			t.Fatalf("slot %d of a popped chunk still holds %+v", i, s)
		}
	}
	for q.len() > 0 {
		q.pop()
	}
	if q.chunks != nil || q.spare != nil {
		t.Fatalf("an empty queue holds %d chunks and a spare of cap %d", len(q.chunks), cap(q.spare))
	}
}

// TestSampleQueueReusesItsSpareChunk: a queue drained as fast as it fills
// (a producer collected every interval) allocates nothing in steady state.
func TestSampleQueueReusesItsSpareChunk(t *testing.T) {
	var q sampleQueue
	for i := 0; i < 3*queueChunk; i++ {
		q.push(bufSample{})
	}
	allocs := testing.AllocsPerRun(10, func() {
		for i := 0; i < 4*queueChunk; i++ {
			q.push(bufSample{})
			q.pop()
		}
	})
	// The chunk list itself is a slice consumed from the front: it is
	// reallocated now and then, a few words at a time.
	if allocs > 2 {
		t.Fatalf("%v allocations per %d pushes and pops, want the spare chunk reused", allocs, 4*queueChunk)
	}
}
