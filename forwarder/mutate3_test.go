package forwarder

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// TestRecord3RandomMutations is FuzzAddRecord3's check over a thousand
// deterministic random mutations of valid records (byte changes, bit
// flips, cuts, insertions), run by every `go test`: a mutated record is
// added, quarantined or sent to the decoding path, never a panic or a
// failure; when added, it decodes (bisection can rebuild it) into as many
// samples as it added rows. It found that a block redefining a session id
// with another series scanned differently from how it decodes.
func TestRecord3RandomMutations(t *testing.T) {
	fleet := sampletest.NewFleet(2).Append(nil, 88, 1)
	every := sampletest.EveryDatumType(1)
	sess := newSession3("p", "i", 1)
	define := sess.record(fleet[:44])
	seeds := [][]byte{sess.record(fleet[44:]), sess.record(every), newSession3("p", "i", 2).record(every[:5]), sess.recordRefusing(fleet[:2], every[:1])}
	u := newSession3("q", "i", 3)
	u.verified = false
	seeds = append(seeds, u.record(every))
	db, _ := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	defer db.Close()
	q, _ := quarantine.Open(db, quarantine.Options{BudgetBytes: -1})
	defer q.Close()
	defsDir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 9))
	for it := 0; it < 1000; it++ {
		p := append([]byte{}, seeds[r.IntN(len(seeds))]...)
		for k := r.IntN(4) + 1; k > 0 && len(p) > 0; k-- {
			switch r.IntN(4) {
			case 0:
				p[r.IntN(len(p))] = byte(r.Uint32())
			case 1:
				i := r.IntN(len(p))
				p = p[:i]
			case 2:
				i := r.IntN(len(p))
				p[i] ^= 1 << r.IntN(8)
			case 3:
				i := r.IntN(len(p))
				p = append(p[:i:i], append([]byte{byte(r.Uint32())}, p[i:]...)...)
			}
		}
		if len(p) == 0 {
			continue
		}
		p[0] = 3
		fw := scanForwarder3Q(t, db, q, defsDir)
		b := &batch{}
		b.reset()
		var page pa.PageRecord
		ctx := context.Background()
		if err := fw.add(ctx, b, 1, wal.Record{Type: wal.TypePage, Payload: define}, &page); err != nil {
			t.Fatal(err)
		}
		before := b.rows.rows
		if err := fw.add(ctx, b, 2, wal.Record{Type: wal.TypePage, Payload: p}, &page); err != nil {
			t.Fatalf("add: %v", err)
		}
		taken := len(b.indexes) == 2
		var dec pa.PageRecord
		decErr := decodeRecord3(fw.defs, p, &dec)
		if taken && decErr != nil {
			t.Fatalf("record added, but it does not decode: %v", decErr)
		}
		if taken && len(b.refused[2]) == 0 && b.rows.rows-before != len(dec.Samples) {
			t.Fatalf("record added with %d rows, it decodes into %d samples", b.rows.rows-before, len(dec.Samples))
		}
	}
}
