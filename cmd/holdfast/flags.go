package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeHelp is said by --help of every daemon with size flags, and by size
// errors.
const sizeHelp = "a size is bytes or a number with a unit: KB MB GB TB (also K M G T) are powers of ten (10GB = 10,000,000,000 bytes), KiB MiB GiB TiB (also Ki Mi Gi Ti) powers of two (10GiB = 10,737,418,240 bytes); 1.5GB works too"

// sizeFlag is the mark of a size flag's usage.
const sizeFlag = " (a size, see below)"

// byteSize is a flag value accepting 1048576, 512MB, 512MiB, 10G, 10GiB, 1.5GB.
type byteSize int64

// String prints the size in the largest binary unit that divides it, so
// --print-config shows 4GiB, not 4294967296, and reads back the same.
func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

// errNotASize is wrapped by every size error. The messages do not repeat
// the value: the flag package and the config file quote it whole, with the
// flag or key name.
var errNotASize = errors.New("not a size")

// sizeUnits: the SI units are powers of ten, as on a disk's label; the IEC
// ones (with i) are powers of two. Matched without regard to case, longest
// first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30}, {"ti", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12},
	{"b", 1},
}

// parseBytes parses a size: plain bytes, or a number (a decimal fraction
// allowed) and a unit of sizeUnits.
func parseBytes(s string) (int64, error) {
	num := strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(num)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	if num == "" {
		return 0, fmt.Errorf("%w: no number; %s", errNotASize, sizeHelp)
	}
	if v, err := strconv.ParseInt(num, 10, 64); err == nil {
		if v < 0 {
			return 0, fmt.Errorf("%w: negative", errNotASize)
		}
		if v > math.MaxInt64/mult {
			return 0, fmt.Errorf("%w: too large", errNotASize)
		}
		return v * mult, nil
	}
	whole, frac, _ := strings.Cut(num, ".")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("%w; %s", errNotASize, sizeHelp)
	}
	if f < 0 {
		return 0, fmt.Errorf("%w: negative", errNotASize)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: too large", errNotASize)
	}
	return int64(math.Round(v)), nil
}

// allDigits: decimal digits only (and at least one), so that sizes are
// plain decimals, never 1e3, 0x10 or NaN.
func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// formatBytes is the inverse of parseBytes for display: the shortest of
// plain bytes and the exact forms in each unit (10GB, not 9765625KiB; 4GiB,
// not 4294967296).
func formatBytes(n int64) string {
	best := strconv.FormatInt(n, 10)
	if n == 0 {
		return best
	}
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n%u.mult == 0 {
			if s := strconv.FormatInt(n/u.mult, 10) + u.suffix; len(s) < len(best) {
				best = s
			}
		}
	}
	return best
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
func (l *stringList) items() []string    { return *l }
func (l *stringList) reset()             { *l = nil }

// listValue is a repeatable flag: a list in a config file.
type listValue interface {
	flag.Value
	items() []string
	reset()
}
