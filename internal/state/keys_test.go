package state

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble"
)

func TestPrefixBounds(t *testing.T) {
	tests := []struct {
		prefix, upper string
		noUpper       bool
	}{
		{"producer/", "producer0", false},
		{"assign/c1\x00", "assign/c1\x01", false},
		{"a", "b", false},
		{"a\xff", "b", false},
		{"a\xff\xff", "b", false},
		{"a\xfe", "a\xff", false},
		{"\xff", "", true},
		{"\xff\xff", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		lower, upper := PrefixBounds([]byte(tt.prefix))
		if string(lower) != tt.prefix {
			t.Errorf("PrefixBounds(%q) lower = %q", tt.prefix, lower)
		}
		if tt.noUpper != (upper == nil) || string(upper) != tt.upper {
			t.Errorf("PrefixBounds(%q) upper = %q (nil %v), want %q (nil %v)", tt.prefix, upper, upper == nil, tt.upper, tt.noUpper)
		}
	}
}

// TestPrefixBoundsDoesNotAlias: the bounds are copies, so a caller may
// append to lower (a page token's "strictly after") without changing the
// prefix it was built from or the upper bound.
func TestPrefixBoundsDoesNotAlias(t *testing.T) {
	prefix := make([]byte, 2, 16)
	copy(prefix, "ab")
	lower, upper := PrefixBounds(prefix)
	lower[0] = 'x'
	_ = append(lower, 0)
	upper[0] = 'y'
	if string(prefix) != "ab" {
		t.Fatalf("prefix changed to %q", prefix)
	}
}

// TestPrefixBoundsIterates: in a real store, the bounds give exactly the
// keys with the prefix, including ones right at the 0xff edge.
func TestPrefixBoundsIterates(t *testing.T) {
	db, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys := []string{"a", "a\xfe", "a\xfe\xff", "a\xff", "a\xff\x00", "a\xff\xff", "a\xff\xff\xff", "b", "b\x00", "\xff", "\xff\x01"}
	for _, k := range keys {
		if err := db.Set([]byte(k), nil, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"a", "a\xfe", "a\xff", "a\xff\xff", "b", "\xff", ""} {
		var want []string
		for _, k := range keys {
			if bytes.HasPrefix([]byte(k), []byte(prefix)) {
				want = append(want, k)
			}
		}
		lower, upper := PrefixBounds([]byte(prefix))
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for it.First(); it.Valid(); it.Next() {
			got = append(got, string(it.Key()))
		}
		it.Close()
		if len(got) != len(want) {
			t.Fatalf("prefix %q: iterated %q, want %q", prefix, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("prefix %q: iterated %q, want %q", prefix, got, want)
			}
		}
	}
}
