package bench

import (
	"os"
	"strconv"
	"testing"

	"github.com/holdfast/holdfast/forwarder"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestBaselineCompressionFollowsTheCollectors: a direct-insert baseline
// dials with the --clickhouse-compression given to the collectors (the
// last one, in either flag form), LZ4 when none or an invalid one is.
func TestBaselineCompressionFollowsTheCollectors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want forwarder.Compression
	}{
		{nil, forwarder.CompressionLZ4},
		{[]string{"--memory-limit=256MiB"}, forwarder.CompressionLZ4},
		{[]string{"--clickhouse-compression=none"}, forwarder.CompressionNone},
		{[]string{"--clickhouse-compression", "zstd"}, forwarder.CompressionZSTD},
		{[]string{"-clickhouse-compression=none", "--clickhouse-compression=zstd"}, forwarder.CompressionZSTD},
		{[]string{"--clickhouse-compression=gzip"}, forwarder.CompressionLZ4},
		{[]string{"--clickhouse-compression"}, forwarder.CompressionLZ4},
	} {
		if got := (Env{CollectorArgs: tc.args}).compression(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.args, got, tc.want)
		}
	}
}
