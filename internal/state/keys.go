package state

// PrefixBounds returns the key range [lower, upper) that holds exactly the
// keys starting with prefix, for pebble.IterOptions' LowerBound and
// UpperBound or a DeleteRange. lower is a copy of prefix; upper is the
// shortest key after every key with the prefix: the prefix with its
// trailing 0xff bytes dropped and its last byte then incremented (a plain
// increment of a last 0xff byte would wrap to 0x00 and give an upper bound
// below the range). upper is nil, meaning no upper bound, when prefix is
// empty or all 0xff, as no key after the range exists.
func PrefixBounds(prefix []byte) (lower, upper []byte) {
	lower = append([]byte(nil), prefix...)
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			upper = append([]byte(nil), prefix[:i+1]...)
			upper[i]++
			return lower, upper
		}
	}
	return lower, nil
}
