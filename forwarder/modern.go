package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cockroachdb/pebble"
	"github.com/google/uuid"

	pa "github.com/holdfast/holdfast/producerapi"
)

// The portable path (every server from 18.16 on) is the default: replays are
// idempotent because the tables are ReplacingMergeTrees and readers use FINAL
// (or, on a cluster, because replicated tables drop identical blocks).
//
// The modern path, on servers from 22.2 on, adds what those offer: every
// INSERT into a measurements table carries an insert_deduplication_token
// derived from the batch's identity, and on a single server the measurements
// tables get non_replicated_deduplication_window, so a replayed batch is
// dropped by the server and a count without FINAL is exact too. Only
// measurements tables: fields and schema rows are written once per new
// timeseries, so a replay (with an empty cache) sends more of them than the
// first run did, and those tables are small and collapsed by FINAL anyway.
//
// 18.16 must never get the token: it does not know the setting, and over the
// native protocol below revision 54429 a string setting fails in the client.

// ServerVersion is a ClickHouse release, as version() prints it.
type ServerVersion struct{ Major, Minor int }

func (v ServerVersion) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ParseServerVersion parses version()'s answer ("18.16.1", "23.8.1.2992").
func ParseServerVersion(s string) (ServerVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return ServerVersion{}, fmt.Errorf("forwarder: server version %q is not major.minor[...]", s)
	}
	var v ServerVersion
	var err1, err2 error
	v.Major, err1 = strconv.Atoi(parts[0])
	v.Minor, err2 = strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || v.Major < 0 || v.Minor < 0 {
		return ServerVersion{}, fmt.Errorf("forwarder: server version %q is not major.minor[...]", s)
	}
	return v, nil
}

// AtLeast reports whether v is major.minor or later.
func (v ServerVersion) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// useModern decides the path: the modern one only on a server known to be
// 22.2 or later (insert_deduplication_token) and unless the portable one is
// forced. An unknown version is the portable path.
func useModern(v ServerVersion, portable bool) bool {
	return !portable && v.AtLeast(22, 2)
}

// detectVersion asks the server its version.
func detectVersion(ctx context.Context, conn driver.Conn) (ServerVersion, string, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s); err != nil {
		return ServerVersion{}, "", fmt.Errorf("forwarder: asking the server version: %w", err)
	}
	v, err := ParseServerVersion(s)
	return v, s, err
}

// dedupWindow is non_replicated_deduplication_window on a modern single
// server: the number of recent blocks whose tokens a table remembers. A
// replay comes right after the lost run's insert, so the default of the
// replicated tables (1000 since 23.x, 100 before) is plenty.
const dedupWindow = 1000

// ModernDDL returns the statements that turn the deduplication window on
// for the measurements tables of db on a modern single server. MODIFY
// SETTING is idempotent, so they run at every start-up and cover tables
// created by older holdfast builds too.
func ModernDDL(db string) []string {
	var out []string
	for _, t := range pa.AllDatumTypes() {
		out = append(out, fmt.Sprintf("ALTER TABLE %s.%s MODIFY SETTING non_replicated_deduplication_window = %d", db, MeasurementsTable(t), dedupWindow))
	}
	return out
}

// dedupKey keeps a random id of this state store's WAL in the state store.
// Tokens carry it so that two collectors writing the same tables, or a WAL
// replaced under a kept state store (its indexes start over), never share a
// token with different rows, which the server would drop.
var dedupKey = []byte("forwarder/dedup-epoch")

// loadDedupEpoch returns the id, making a new one when none is stored or
// renew is set (the WAL was replaced).
func loadDedupEpoch(db *pebble.DB, renew bool) (string, error) {
	if !renew {
		v, closer, err := db.Get(dedupKey)
		if err == nil {
			id := string(v)
			closer.Close()
			return id, nil
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return "", fmt.Errorf("forwarder: reading the deduplication epoch: %w", err)
		}
	}
	id := strings.ReplaceAll(uuid.NewString(), "-", "")
	if err := db.Set(dedupKey, []byte(id), pebble.Sync); err != nil {
		return "", fmt.Errorf("forwarder: storing the deduplication epoch: %w", err)
	}
	return id, nil
}

// dedupToken is the insert_deduplication_token of the INSERT of a batch's
// rows into table. A replay of a batch after a crash between INSERT and
// checkpoint covers the same records (the in-flight cut, inflight.go) and so
// gets the same token; any other batch covers other records and gets
// another.
func dedupToken(epoch string, indexes []uint64, table string) string {
	if len(indexes) == 0 {
		return ""
	}
	return fmt.Sprintf("holdfast-%s-%d-%d-%d-%s", epoch, indexes[0], indexes[len(indexes)-1], len(indexes), table)
}

// tokenContext adds the token to the settings of an INSERT's context.
func tokenContext(ctx context.Context, cluster, token string) context.Context {
	if token == "" {
		return insertContext(ctx, cluster)
	}
	s := clickhouse.Settings{"insert_deduplication_token": token}
	if cluster != "" {
		for k, v := range insertSettings {
			s[k] = v
		}
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(s))
}

// choosePath detects the server's version and picks the portable or the
// modern path; on the modern path of a single server it turns the
// measurements tables' deduplication window on (replicated tables have
// theirs already). Run before the first insert, and again whenever the
// schema is ensured again (a failover may reach another server).
func (f *Forwarder) choosePath(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, f.opts.InsertTimeout)
	defer cancel()
	v, raw, err := detectVersion(sctx, f.conn)
	modern := false
	if err != nil {
		// A version this build cannot read: the portable path works on all.
		f.log.Warn("cannot tell the ClickHouse version; using the portable path", "err", err)
	} else {
		modern = useModern(v, f.opts.Portable)
	}
	if modern && f.opts.Cluster == "" {
		for _, q := range ModernDDL(f.opts.Database) {
			if err := execTimeout(ctx, f.conn, q, f.opts.InsertTimeout); err != nil {
				return err
			}
		}
	}
	if !f.pathChosen || modern != f.modern || f.Status().ServerVersion != raw {
		f.log.Info("ClickHouse server version", "version", raw, "modern_path", modern, "portable_forced", f.opts.Portable)
	}
	f.modern, f.pathChosen = modern, true
	f.mu.Lock()
	f.mu.status.ServerVersion, f.mu.status.ModernPath = raw, modern
	f.mu.Unlock()
	return nil
}
