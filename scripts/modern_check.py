#!/usr/bin/env python3
"""Runs holdfast's SQL on a modern ClickHouse (26.x) embedded as libchdb.so.

Only ClickHouse 18.16 installs here as a server; chDB is ClickHouse as a
library (clickhouse-local: no server, no native protocol, no ZooKeeper), so
this checks the SQL text, not the driver. Run by scripts/modern-check.sh:

    modern_check.py LIBCHDB HOLDFAST_BIN V1_SQL WORKDIR

Checked, each a PASS/FAIL line:
  single   every statement `holdfast schema` prints, twice (IF NOT EXISTS
           reruns at every start)
  cluster  every statement of `holdfast schema --cluster holdfast` as
           printed, parsed (EXPLAIN AST: clickhouse-local refuses ON
           CLUSTER); then each run with ON CLUSTER stripped and
           Replicated*MergeTree(path, replica) rewritten to the plain
           engine (no cluster or ZooKeeper here); the Distributed
           tables against a one-shard cluster `holdfast` defined in a config
           file pointing at this process, queried with FINAL
  migrate  forwarder/testdata/schema_v1.sql with rows inserted by SQL, then
           the statement sequence forwarder/migrate.go issues for the v1->v2
           upgrade (reproduced here; see migrate_v1())
  modern   the modern path (forwarder/modern.go, servers 22.2+): the
           statements of forwarder/testdata/modern_ddl.sql (kept equal to
           ModernDDL by a Go test) on a fresh single-server schema, twice;
           then INSERTs carrying insert_deduplication_token in the
           forwarder's format, a batch replayed with the same token leaving
           one copy without FINAL, another token keeping its rows
  query    every query README.md, DESIGN.md and scripts/demo.sh tell users to
           run, on rows with known values, answers asserted
  views    a WHERE on the sorting key is pushed into samples_<type> on 26.5
           (a max_rows_to_read budget one name fits in and all rows exceed)
  docs     docs/queries.md: the rows the forwarder wrote for its example
           data on 18.16 (forwarder/testdata/queries_example.sql), then every
           query of the document, the modern-only ones included, each answer
           compared with the table the document shows under it
Exit status 1 on any FAIL.
"""

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import time

results = []  # (section, name, ok, detail)


class CHDB:
    def __init__(self, lib, path, config=None):
        self.lib = ctypes.CDLL(lib)
        L = self.lib
        L.chdb_connect.restype = ctypes.POINTER(ctypes.c_void_p)
        L.chdb_connect.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        L.chdb_query.restype = ctypes.c_void_p
        L.chdb_query.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        for f in ("chdb_result_buffer", "chdb_result_error"):
            getattr(L, f).restype = ctypes.c_void_p
            getattr(L, f).argtypes = [ctypes.c_void_p]
        L.chdb_result_length.restype = ctypes.c_size_t
        L.chdb_result_length.argtypes = [ctypes.c_void_p]
        L.chdb_destroy_query_result.argtypes = [ctypes.c_void_p]
        L.chdb_close_conn.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        args = [b"clickhouse", ("--path=" + path).encode()]
        if config:
            args.append(("--config-file=" + config).encode())
        argv = (ctypes.c_char_p * len(args))(*args)
        self.conn = L.chdb_connect(len(args), argv)
        if not self.conn or not self.conn[0]:
            raise RuntimeError("chdb_connect failed (path %s)" % path)

    def query(self, sql, fmt="TSV"):
        """Returns the output; raises RuntimeError with ClickHouse's error."""
        L = self.lib
        r = L.chdb_query(self.conn[0], sql.encode(), fmt.encode())
        if not r:
            raise RuntimeError("chdb_query returned NULL")
        try:
            err = L.chdb_result_error(r)
            if err:
                raise RuntimeError(ctypes.string_at(err).decode(errors="replace").strip())
            buf, n = L.chdb_result_buffer(r), L.chdb_result_length(r)
            return ctypes.string_at(buf, n).decode() if buf and n else ""
        finally:
            L.chdb_destroy_query_result(r)

    def close(self):
        self.lib.chdb_close_conn(self.conn)


def check(section, name, fn):
    """Runs fn(); a raised exception or a false return is a FAIL."""
    try:
        detail = fn()
        ok = detail is not False
        detail = "" if detail in (None, True) else str(detail)
    except Exception as e:  # report every failure, keep going
        ok, detail = False, str(e).splitlines()[0][:300] if str(e) else repr(e)
    results.append((section, name, ok, detail))
    print("%s %-8s %s%s" % ("PASS" if ok else "FAIL", section, name, ("  -- " + detail) if detail else ""), flush=True)
    return ok


def expect(got, want):
    if got != want:
        raise AssertionError("got %r, want %r" % (got, want))
    return True


def statements(text):
    """Splits a schema dump into statements (no ';' inside literals there)."""
    out = []
    for s in text.split(";"):
        lines = [l for l in s.strip().splitlines() if not l.startswith("--")]
        s = "\n".join(lines).strip()
        if s:
            out.append(s)
    return out


def lit(v):
    """A ClickHouse literal for a str or a list of str."""
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def first_line(q):
    return q.splitlines()[0][:110]


def holdfast_schema(binary, *args):
    return subprocess.run([binary, "schema", *args], check=True, capture_output=True, text=True).stdout


def tsv(ch, q):
    # TSVRaw: no escaping, so a quoted default reads back as written.
    return [l.split("\t") for l in ch.query(q, fmt="TSVRaw").splitlines()]


def scalar(ch, q):
    return ch.query(q, fmt="TSVRaw").strip()


# ---------------------------------------------------------------- single

def single_server(ch, binary, db):
    for q in statements(holdfast_schema(binary, "--database", db)):
        check("single", first_line(q), lambda q=q: ch.query(q))
        check("single", "rerun: " + first_line(q), lambda q=q: ch.query(q))


# ---------------------------------------------------------------- cluster

REPLICATED = re.compile(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'\)")


def cluster_parsed(ch, binary, db):
    """The cluster DDL exactly as printed, parsed by 26.5 (EXPLAIN AST).

    clickhouse-local refuses ON CLUSTER (code 392, "Replicated DDL queries
    are disabled"), and Replicated tables created against its TestKeeper
    stay read-only and make DROP and shutdown hang for minutes, so the
    printed text, Replicated engines and ON CLUSTER included, is parsed
    only; cluster() below runs it adapted.
    """
    for q in statements(holdfast_schema(binary, "--cluster", "holdfast", "--database", db)):
        check("cluster", "(as printed, parsed: EXPLAIN AST) " + first_line(q), lambda q=q: ch.query("EXPLAIN AST " + q) != "")


def cluster(ch, binary, db):
    for q in statements(holdfast_schema(binary, "--cluster", "holdfast", "--database", db)):
        local = q.replace(" ON CLUSTER holdfast", "")
        local = REPLICATED.sub(r"\1()", local)
        check("cluster", "(ON CLUSTER stripped, Replicated->plain) " + first_line(local), lambda q=local: ch.query(q))
    # ensureClusterSchema's reads: system.tables' sorting_key of each T_local
    # (clusterTableCurrent compares it with the single-server key), the
    # version column's type of timeseries_schema_local, max(version) through
    # the Distributed schema_version.
    # Tables only: the views (views.go) have no _local twin.
    single_keys = {r[0]: r[1] for r in tsv(ch, "SELECT name, sorting_key FROM system.tables WHERE database = 'holdfast' AND engine != 'View'")}
    cluster_keys = {r[0]: r[1] for r in tsv(ch, "SELECT name, sorting_key FROM system.tables WHERE database = '%s'" % db)}
    check("cluster", "system.tables sorting_key of every T_local equals the single-server T's",
          lambda: expect({t + "_local": k for t, k in single_keys.items()},
                         {t: k for t, k in cluster_keys.items() if t.endswith("_local")}))
    check("cluster", "SELECT type FROM system.columns ... timeseries_schema_local.version = UInt32",
          lambda: expect(scalar(ch, "SELECT type FROM system.columns WHERE database = '%s' AND table = 'timeseries_schema_local' AND name = 'version'" % db), "UInt32"))
    check("cluster", "SELECT max(version) FROM Distributed schema_version (empty: 0)",
          lambda: expect(scalar(ch, "SELECT max(version) FROM %s.schema_version" % db), "0"))
    # Rows through the Distributed table, then FINAL through it (the
    # cluster's exact-count query in DESIGN.md and README.md).
    d = db + ".measurements_f64"

    def insert_via_distributed():
        for _ in range(2):  # a replayed batch: the same rows twice
            ch.query("INSERT INTO %s (timeseries_name, timeseries_key, timestamp_ns, datum) SETTINGS insert_distributed_sync = 1 VALUES "
                     "('virtual_machine:cpu_busy', 1, 1000, 1.5), ('virtual_machine:cpu_busy', 2, 1000, 2.5)" % d,
                     fmt="TSV")
        ch.query("SYSTEM FLUSH DISTRIBUTED %s" % d)

    if check("cluster", "INSERT into Distributed measurements_f64 twice (insert_distributed_sync)", insert_via_distributed):
        check("cluster", "SELECT count() FROM Distributed measurements_f64 (no FINAL) = 4: the replay is there",
              lambda: expect(scalar(ch, "SELECT count() FROM %s" % d), "4"))
        check("cluster", "SELECT count() FROM Distributed measurements_f64 FINAL = 2",
              lambda: expect(scalar(ch, "SELECT count() FROM %s FINAL" % d), "2"))
        check("cluster", "SELECT count() FROM Distributed measurements_f64 FINAL WHERE timeseries_name = ... = 2",
              lambda: expect(scalar(ch, "SELECT count() FROM %s FINAL WHERE timeseries_name = 'virtual_machine:cpu_busy'" % d), "2"))


# ---------------------------------------------------------------- migrate

def fnv_version(names):
    """producerapi.SchemaVersion: FNV-1a 32 over sorted names, each + NUL; 0 -> 1."""
    h = 0x811C9DC5
    for n in sorted(names):
        for b in n.encode() + b"\0":
            h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h or 1


def ddl_for(schema_text, db, table, as_name):
    for q in statements(schema_text):
        if q.startswith("CREATE TABLE IF NOT EXISTS %s.%s (" % (db, table)):
            return q.replace("%s.%s (" % (db, table), "%s.%s (" % (db, as_name), 1)
    raise KeyError(table)


def columns_of(ddl):
    """Stored columns of a CREATE TABLE (ALIAS columns are not copied)."""
    body = ddl[ddl.index("(") + 1: ddl.rindex(") ENGINE")]
    return [c.strip().split()[0] for c in body.split(",\n") if " ALIAS " not in c]


def migrate_v1(ch, binary, v1_sql):
    db = "holdfast_v1_fixture"
    for q in statements(open(v1_sql).read()):
        check("migrate", "v1 DDL: " + first_line(q), lambda q=q: ch.query(q))
    # Rows with known values: two samples and a counter reset (same
    # timestamp, another start time; one sample in v1's key) per start-time
    # table; two schema rows.
    rows = {
        "measurements_f64": ("(timeseries_name, timeseries_key, timestamp_ns, datum)",
                             "('m:f', 1, 1000, 1.5), ('m:f', 1, 2000, 2.5)"),
        "measurements_cumulative_u64": ("(timeseries_name, timeseries_key, timestamp_ns, start_time_ns, datum)",
                                        "('m:c', 1, 1000, 10, 5), ('m:c', 1, 2000, 10, 7)"),
        "measurements_histogram_f64": ("(timeseries_name, timeseries_key, timestamp_ns, start_time_ns, bins, counts, min, max, sum_of_samples)",
                                       "('m:h', 1, 1000, 10, [0, 1], [3, 4], 0, 1, 2.5)"),
    }
    for t, (cols, vals) in rows.items():
        check("migrate", "v1 INSERT INTO %s" % t, lambda t=t, c=cols, v=vals: ch.query("INSERT INTO %s.%s %s VALUES %s" % (db, t, c, v)))
    check("migrate", "v1 INSERT INTO timeseries_schema (version UInt16)", lambda: ch.query(
        "INSERT INTO %s.timeseries_schema VALUES ('m:f', ['vm', 'host'], ['u64', 'string'], ['target', 'target'], 'f64', 1, 100), "
        "('m:c', [], [], [], 'cumulative_u64', 1, 200)" % db))
    check("migrate", "v1 INSERT INTO schema_version", lambda: ch.query("INSERT INTO %s.schema_version VALUES (1, 1)" % db))

    current = holdfast_schema(binary, "--database", db)
    holder, run = "modern-check", "0badc0de_00000001"

    # EnsureSchemaWith: version bookkeeping.
    check("migrate", "SELECT max(version) FROM schema_version = 1",
          lambda: expect(scalar(ch, "SELECT max(version) FROM %s.schema_version" % db), "1"))
    check("migrate", "INSERT INTO schema_version (version, applied_ns) (version 2)",
          lambda: ch.query("INSERT INTO %s.schema_version (version, applied_ns) VALUES (2, 2)" % db))

    # tableInfos, and migrate's choice of tables to rebuild (t.current).
    def infos():
        out = {r[0]: {"engine": r[1], "key": r[2]} for r in tsv(ch, "SELECT name, engine, sorting_key FROM system.tables WHERE database = '%s'" % db)}
        typ = scalar(ch, "SELECT type FROM system.columns WHERE database = '%s' AND table = 'timeseries_schema' AND name = 'version'" % db)
        out.setdefault("timeseries_schema", {})["version"] = typ
        return out

    want_keys = {}
    for q in statements(current):
        m = re.match(r"CREATE TABLE IF NOT EXISTS \S+\.(measurements_\w+) \(", q)
        if m:
            want_keys[m.group(1)] = re.search(r"ORDER BY \((.*)\)\s*$", q).group(1)
    info = {}
    check("migrate", "SELECT name, engine, sorting_key FROM system.tables / type FROM system.columns",
          lambda: info.update(infos()) or True)
    stale = sorted(t for t, k in want_keys.items() if info.get(t, {}).get("key") != k)
    check("migrate", "tables in the old layout found by system.tables sorting_key: %s" % ", ".join(stale),
          lambda: expect(stale, sorted(t for t in want_keys if "cumulative" in t or "histogram" in t)))
    check("migrate", "timeseries_schema.version is UInt16 in v1",
          lambda: expect(info.get("timeseries_schema", {}).get("version"), "UInt16"))
    check("migrate", "engine of every table is ReplacingMergeTree (rebuildEngine)",
          lambda: expect(sorted(t for t in stale if info[t]["engine"] != "ReplacingMergeTree"), []))

    # lockUpgrade / lockHolder.
    lock = "CREATE TABLE %s.schema_upgrade_lock (holder String DEFAULT '%s', since DateTime DEFAULT now()) ENGINE = TinyLog" % (db, holder)
    check("migrate", "CREATE TABLE schema_upgrade_lock ... ENGINE = TinyLog", lambda: ch.query(lock))

    def lock_is_test_and_set():
        try:
            ch.query(lock)
        except RuntimeError:
            return True
        raise AssertionError("a second CREATE of the lock table succeeded")
    check("migrate", "a second CREATE of the lock fails (test-and-set)", lock_is_test_and_set)
    lock_holder = "SELECT default_expression FROM system.columns WHERE database = '%s' AND table = 'schema_upgrade_lock' AND name = 'holder'" % db
    check("migrate", "lockHolder: default_expression = quoted holder",
          lambda: expect(scalar(ch, lock_holder), "'%s'" % holder))

    # rebuildTable + foldInto for each stale measurement table, then
    # timeseries_schema (copySchemaRows computes the version client-side).
    def rebuild(t, identity, partitioned, copy):
        up, old = "%s__upgrading_%s" % (t, run), "%s__replaced_%s" % (t, run)
        check("migrate", "%s: CREATE TABLE %s (current DDL)" % (t, up), lambda: ch.query(ddl_for(current, db, t, up)))
        check("migrate", "%s: copy into %s" % (t, up), lambda: copy(t, up, "1"))
        check("migrate", "%s: lockHolder before swap" % t, lambda: expect(scalar(ch, lock_holder), "'%s'" % holder))
        check("migrate", "%s: RENAME TABLE T TO T__replaced, T__upgrading TO T" % t, lambda: ch.query(
            "RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s" % (db, t, db, old, db, up, db, t)))
        parts = ["1"]
        if partitioned:
            ps = [r[0] for r in tsv(ch, "SELECT DISTINCT partition FROM system.parts WHERE database = '%s' AND table = '%s' AND active" % (db, old))]
            check("migrate", "%s: system.parts partitions of %s are intDiv values" % (t, old),
                  lambda: all(re.fullmatch(r"-?\d+", p) for p in ps))
            parts = ["intDiv(timestamp_ns, 604800000000000) = %s" % p for p in ps]
        for p in parts:
            missing = "%s AND (%s) NOT IN (SELECT %s FROM %s.%s WHERE %s)" % (p, identity, identity, db, t, p)
            check("migrate", "%s: fold count of rows T lacks = 0" % t,
                  lambda m=missing: expect(scalar(ch, "SELECT count() FROM %s.%s WHERE %s" % (db, old, m)), "0"))
        check("migrate", "%s: DROP TABLE IF EXISTS %s" % (t, old), lambda: ch.query("DROP TABLE IF EXISTS %s.%s" % (db, old)))

    def copy_measurements(t, to, where):
        cols = ", ".join(columns_of(ddl_for(current, db, t, t)))
        ch.query("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s WHERE %s" % (db, to, cols, cols, db, t, where))

    before = {t: scalar(ch, "SELECT count() FROM %s.%s FINAL" % (db, t)) for t in stale}
    for t in stale:
        rebuild(t, want_keys[t], True, copy_measurements)


    def copy_schema(t, to, where):
        # copySchemaRows: read the rows (not version: UInt16 in v1), send
        # them back with version = SchemaVersion(fields_name). Go sends a
        # native batch; this sends INSERT ... VALUES with the same columns.
        got = [json.loads(l) for l in ch.query(
            "SELECT timeseries_name, fields_name, fields_type, fields_source, datum_type, created_ns FROM %s.%s WHERE %s" % (db, t, where),
            fmt="JSONEachRow").splitlines()]
        if len(got) != 2:
            raise AssertionError("read %d schema rows, want 2" % len(got))
        vals = ", ".join("(%s, %s, %s, %s, %s, %d, %s)" % (
            lit(r["timeseries_name"]), lit(r["fields_name"]), lit(r["fields_type"]), lit(r["fields_source"]),
            lit(r["datum_type"]), fnv_version(r["fields_name"]), int(r["created_ns"])) for r in got)
        ch.query("INSERT INTO %s.%s (timeseries_name, fields_name, fields_type, fields_source, datum_type, version, created_ns) VALUES %s" % (db, to, vals))

    if info.get("timeseries_schema", {}).get("version") != "UInt32":
        rebuild("timeseries_schema", "timeseries_name, fields_name", False, copy_schema)
    check("migrate", "DROP TABLE IF EXISTS schema_upgrade_lock", lambda: ch.query("DROP TABLE IF EXISTS %s.schema_upgrade_lock" % db))

    # After: every table current, every row kept, versions computed.
    after = infos()
    check("migrate", "after: every measurements sorting key is the current one",
          lambda: expect({t: after[t]["key"] for t in want_keys}, want_keys))
    check("migrate", "after: timeseries_schema.version is UInt32", lambda: expect(after["timeseries_schema"]["version"], "UInt32"))
    check("migrate", "after: no staging tables left",
          lambda: expect([n for n in after if "__upgrading" in n or "__replaced" in n or n == "schema_upgrade_lock"], []))
    for t in stale:
        check("migrate", "after: %s keeps its %s rows (FINAL)" % (t, before[t]),
              lambda t=t: expect(scalar(ch, "SELECT count() FROM %s.%s FINAL" % (db, t)), before[t]))
    check("migrate", "after: measurements_cumulative_u64 values",
          lambda: expect(tsv(ch, "SELECT timestamp_ns, start_time_ns, datum FROM %s.measurements_cumulative_u64 FINAL ORDER BY timestamp_ns" % db),
                         [["1000", "10", "5"], ["2000", "10", "7"]]))
    check("migrate", "after: timeseries_schema versions are SchemaVersion(fields)",
          lambda: expect(tsv(ch, "SELECT timeseries_name, version FROM %s.timeseries_schema FINAL ORDER BY timeseries_name" % db),
                         [["m:c", str(fnv_version([]))], ["m:f", str(fnv_version(["vm", "host"]))]]))
    check("migrate", "after: a counter reset (same ts, new start time) is a second row in v2",
          lambda: ch.query("INSERT INTO %s.measurements_cumulative_u64 (timeseries_name, timeseries_key, timestamp_ns, start_time_ns, datum) VALUES ('m:c', 1, 2000, 1500, 1)" % db) == "" and
          expect(scalar(ch, "SELECT count() FROM %s.measurements_cumulative_u64 FINAL" % db), "3"))
    # README.md: an operator frees a lock whose holder died for good.
    check("migrate", "README: DROP TABLE <db>.schema_upgrade_lock frees a dead holder's lock", lambda: (
        ch.query(lock.replace(holder, "dead-holder")) == "" and ch.query("DROP TABLE %s.schema_upgrade_lock" % db) == ""
        and expect(scalar(ch, lock_holder), "")))
    check("migrate", "after: holdfast schema DDL reruns on the upgraded database",
          lambda: [ch.query(q) for q in statements(current)] and True)


# ---------------------------------------------------------------- modern

def modern(ch, binary, db, repo):
    for q in statements(holdfast_schema(binary, "--database", db)):
        check("modern", "schema: " + first_line(q), lambda q=q: ch.query(q))
    with open(os.path.join(repo, "forwarder", "testdata", "modern_ddl.sql")) as f:
        ddl = [q.replace("TABLE holdfast.", "TABLE %s." % db) for q in statements(f.read())]
    for q in ddl:
        check("modern", first_line(q), lambda q=q: ch.query(q))
        check("modern", "rerun (every start-up): " + first_line(q), lambda q=q: ch.query(q))
    check("modern", "SHOW CREATE TABLE measurements_f64 has non_replicated_deduplication_window = 1000",
          lambda: expect("non_replicated_deduplication_window = 1000" in scalar(ch, "SHOW CREATE TABLE %s.measurements_f64" % db), True))
    t = db + ".measurements_f64"
    cols = "timeseries_name, timeseries_key, timestamp_ns, datum"
    # Rows in two weekly partitions: the server splits the INSERT into a
    # block per partition and deduplicates each (token + block number).
    rows = "('virtual_machine:cpu_busy', 1, 1000, 1.5), ('virtual_machine:cpu_busy', 2, %d, 2.5)" % (7 * 24 * 3600 * 10**9 + 5)
    # forwarder/modern.go dedupToken + table: holdfast-EPOCH-FIRST-LAST-N-TABLE
    token = "holdfast-0123456789abcdef0123456789abcdef-41-57-17-measurements_f64"

    def insert(tok):
        ch.query("INSERT INTO %s (%s) SETTINGS insert_deduplication_token = %s VALUES %s" % (t, cols, lit(tok), rows))

    if check("modern", "INSERT ... SETTINGS insert_deduplication_token = 'holdfast-...' (a batch)", lambda: insert(token)):
        check("modern", "the same batch replayed with the same token", lambda: insert(token))
        check("modern", "SELECT count() FROM measurements_f64 (no FINAL) = 2: the replay was dropped",
              lambda: expect(scalar(ch, "SELECT count() FROM %s" % t), "2"))
        other = token.replace("-41-57-17-", "-58-60-3-")
        check("modern", "the same rows under another batch's token are kept", lambda: insert(other))
        check("modern", "SELECT count() FROM measurements_f64 (no FINAL) = 4, FINAL = 2",
              lambda: expect((scalar(ch, "SELECT count() FROM %s" % t), scalar(ch, "SELECT count() FROM %s FINAL" % t)), ("4", "2")))


# ---------------------------------------------------------------- queries

def queries(ch, db, repo):
    ins = [
        # cpu_busy: vm 0 (key 1) three samples, vm 1 (key 2) two; the
        # first sample of key 1 is inserted again (a replay) in its own part.
        "INSERT INTO %s.measurements_f64 (timeseries_name, timeseries_key, timestamp_ns, datum) VALUES "
        "('virtual_machine:cpu_busy', 1, 1000000000, 10), ('virtual_machine:cpu_busy', 1, 2000000000, 20), "
        "('virtual_machine:cpu_busy', 1, 3000000000, 30), ('virtual_machine:cpu_busy', 2, 1000000000, 50), "
        "('virtual_machine:cpu_busy', 2, 2000000000, 70), ('other:f', 9, 1000000000, 1)",
        "INSERT INTO %s.measurements_f64 (timeseries_name, timeseries_key, timestamp_ns, datum) VALUES ('virtual_machine:cpu_busy', 1, 1000000000, 10)",
        "INSERT INTO %s.measurements_i64 (timeseries_name, timeseries_key, timestamp_ns, datum) VALUES ('x:i', 3, 1000000000, -4)",
        # counter reset: same timestamp, another start time = two samples
        "INSERT INTO %s.measurements_cumulative_u64 (timeseries_name, timeseries_key, timestamp_ns, start_time_ns, datum) VALUES "
        "('x:c', 4, 2000000000, 0, 9), ('x:c', 4, 2000000000, 1500000000, 1)",
        "INSERT INTO %s.measurements_cumulative_u64 (timeseries_name, timeseries_key, timestamp_ns, start_time_ns, datum) VALUES ('x:c', 4, 2000000000, 0, 9)",
        "INSERT INTO %s.measurements_histogram_f64 (timeseries_name, timeseries_key, timestamp_ns, start_time_ns, bins, counts, min, max, sum_of_samples) VALUES "
        "('x:h', 5, 1000000000, 0, [0, 1], [2, 3], 0, 1, 3)",
        "INSERT INTO %s.fields_u64 (timeseries_name, timeseries_key, field_name, field_value) VALUES "
        "('virtual_machine:cpu_busy', 1, 'vm', 0), ('virtual_machine:cpu_busy', 2, 'vm', 1)",
        "INSERT INTO %s.fields_u64 (timeseries_name, timeseries_key, field_name, field_value) VALUES ('virtual_machine:cpu_busy', 1, 'vm', 0)",
        "INSERT INTO %s.timeseries_schema (timeseries_name, fields_name, fields_type, fields_source, datum_type, version, created_ns) VALUES "
        "('virtual_machine:cpu_busy', ['vm'], ['u64'], ['target'], 'f64', %d, 1), "
        "('virtual_machine:cpu_busy', ['host', 'vm'], ['string', 'u64'], ['target', 'target'], 'f64', %d, 2)"
        % ("%s", fnv_version(["vm"]), fnv_version(["host", "vm"])),
        "INSERT INTO %s.timeseries_schema (timeseries_name, fields_name, fields_type, fields_source, datum_type, version, created_ns) VALUES "
        "('virtual_machine:cpu_busy', ['vm'], ['u64'], ['target'], 'f64', %d, 3)" % ("%s", fnv_version(["vm"])),
    ]
    for q in ins:
        check("query", "setup: " + first_line(q % db)[:90], lambda q=q: ch.query(q % db))
    check("query", "without FINAL the replayed row is counted twice (7)",
          lambda: expect(scalar(ch, "SELECT count() FROM %s.measurements_f64" % db), "7"))

    def doc(q, want):
        q = q.replace("holdfast.", db + ".").replace("holdfast_demo.", db + ".")
        check("query", " ".join(q.split())[:120], lambda: expect(tsv(ch, q), want))

    # README.md "Reading the data", "Running against a ClickHouse cluster";
    # DESIGN.md exact counts (single server and cluster).
    doc("SELECT count() FROM holdfast.measurements_f64 FINAL\nWHERE timeseries_name = 'virtual_machine:cpu_busy'", [["5"]])
    doc("SELECT count() FROM holdfast.measurements_f64 FINAL", [["6"]])
    doc("SELECT count() FROM holdfast.measurements_f64 FINAL WHERE timeseries_name = 'virtual_machine:cpu_busy'", [["5"]])
    doc("SELECT timeseries_name, version, fields_name, fields_type, datum_type\nFROM holdfast.timeseries_schema FINAL ORDER BY timeseries_name, version",
        sorted([["virtual_machine:cpu_busy", str(fnv_version(["vm"])), "['vm']", "['u64']", "f64"],
                ["virtual_machine:cpu_busy", str(fnv_version(["host", "vm"])), "['host','vm']", "['string','u64']", "f64"]],
               key=lambda r: int(r[1])))
    # The demo's queries, taken from scripts/demo.sh itself.
    demo = open(os.path.join(repo, "scripts", "demo.sh")).read()
    q1 = re.search(r'^query="(.*?)"$', demo, re.S | re.M).group(1)
    q2 = re.search(r'^q2="(.*?)"$', demo, re.S | re.M).group(1).replace("$vms", "1").replace("$((vms + 1))", "2")
    q3 = re.search(r'^q3="(.*?)"$', demo, re.S | re.M).group(1)
    # WITH TOTALS: the totals row follows an empty line in TSV.
    doc(q1, [["other:f", "1"], ["virtual_machine:cpu_busy", "5"], ["x:c", "2"], ["x:h", "1"], ["x:i", "1"], [""], ["", "10"]])
    doc(q2, [["0", "3", "10", "20", "30"], ["1", "2", "50", "60", "70"]])
    doc(q3, sorted([["virtual_machine:cpu_busy", str(fnv_version(["vm"])), "vm", "f64"],
                    ["virtual_machine:cpu_busy", str(fnv_version(["host", "vm"])), "host,vm", "f64"]], key=lambda r: int(r[1])))
    # DESIGN.md: the timestamp alias and a counter reset are two samples.
    doc("SELECT toString(timestamp) FROM holdfast.measurements_i64 FINAL", [["1970-01-01 00:00:01"]])
    doc("SELECT count() FROM holdfast.measurements_cumulative_u64 FINAL", [["2"]])
    # DESIGN.md, "Migrations on a cluster": moving a database by hand,
    # INSERT INTO NEW.T SELECT ... FROM OLD.T, here into the cluster
    # flavour's Distributed table (which already holds 2 rows, key 1 and 2
    # at ts 1000), then the cluster's exact count through it.
    cols = "timeseries_name, timeseries_key, timestamp_ns, datum"
    check("query", "DESIGN.md cluster move: INSERT INTO NEW.measurements_f64 SELECT ... FROM OLD.measurements_f64 FINAL",
          lambda: ch.query("INSERT INTO holdfast_cluster.measurements_f64 (%s) SETTINGS insert_distributed_sync = 1 SELECT %s FROM %s.measurements_f64 FINAL" % (cols, cols, db)))
    check("query", "after the move: SELECT count() FROM NEW.measurements_f64 FINAL = 2 + 6",
          lambda: expect(scalar(ch, "SELECT count() FROM holdfast_cluster.measurements_f64 FINAL"), "8"))


# ---------------------------------------------------------------- docs

def parse_queries_doc(text):
    """docs/queries.md's ```sql blocks and the result table under each, as
    forwarder.parseQueriesDoc reads them: (line, modern, sql, header, rows)."""
    lines = text.split("\n")
    out, i = [], 0

    def cells(row):
        row = row.strip()
        row = row[1:] if row.startswith("|") else row
        row = row[:-1] if row.endswith("|") else row
        out = []
        for c in row.replace("\\|", "\0").split("|"):
            c = c.replace("\0", "|").strip()
            if len(c) >= 2 and c[0] == "`" and c[-1] == "`":
                c = c[1:-1]
            out.append(c)
        return out

    while i < len(lines):
        fence = lines[i].strip()
        if not fence.startswith("```sql"):
            i += 1
            continue
        line, modern = i + 1, fence[len("```sql"):].strip() == "modern"
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        while i < len(lines) and lines[i].strip() == "":
            i += 1
        if i + 1 >= len(lines) or not lines[i].startswith("|") or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            raise ValueError("line %d: the ```sql block is not followed by its result table" % line)
        header, rows = cells(lines[i]), []
        i += 2
        while i < len(lines) and lines[i].startswith("|"):
            rows.append(cells(lines[i]))
            i += 1
        out.append((line, modern, "\n".join(body).strip(), header, rows))
    return out


def docs(ch, binary, repo):
    """docs/queries.md on 26.5: the example rows the Go test wrote through
    the forwarder on 18.16 (forwarder/testdata/queries_example.sql, kept
    equal to them by forwarder.TestQueriesDocAnswers), then every query of
    the document, the modern ones included, answers compared with its
    table."""
    db = "holdfast_docs"
    for q in statements(holdfast_schema(binary, "--database", db)):
        check("docs", "schema: " + first_line(q), lambda q=q: ch.query(q))
    t0 = int(scalar(ch, "SELECT toInt64(now())"))
    with open(os.path.join(repo, "forwarder", "testdata", "queries_example.sql")) as f:
        fixture = f.read()
    for q in statements(fixture):
        q = re.sub(r"\{T-(\d+)\}", lambda m: str(t0 * 10**9 - int(m.group(1))), q).replace("holdfast.", db + ".")
        check("docs", "example rows: " + first_line(q), lambda q=q: ch.query(q))
    with open(os.path.join(repo, "docs", "queries.md")) as f:
        text = f.read()
    times = {}
    for n in set(re.findall(r"<T-(\d+)>", text)):
        times["<T-%s>" % n] = scalar(ch, "SELECT toString(toDateTime(%d))" % (t0 - int(n)))
    blocks = []
    check("docs", "docs/queries.md: every sql block has its result table", lambda: blocks.extend(parse_queries_doc(text)) or len(blocks) > 0)
    for line, modern, sql, header, rows in blocks:
        want = [header] + [[re.sub(r"<T-\d+>", lambda m: times[m.group(0)], c) for c in r] for r in rows]
        q = sql.replace("holdfast.", db + ".")
        name = "docs/queries.md:%d%s %s" % (line, " (modern)" if modern else "", " ".join(sql.split())[:90])
        check("docs", name, lambda q=q, want=want: expect([l.split("\t") for l in ch.query(q, fmt="TSVWithNames").splitlines()], want))


def views_pushdown(ch, binary):
    """DESIGN.md, Views for readers: 26.5 pushes a WHERE on the sorting key
    into samples_<type> (18.16 does not: it reads the table whole). 200,000
    rows over 100 names; one name's 2,000 rows are read within a 50,000-row
    budget, while a filter that cannot use the key exceeds it (the control
    that shows the budget bites)."""
    db = "holdfast_push"
    for q in statements(holdfast_schema(binary, "--database", db)):
        check("views", "schema: " + first_line(q), lambda q=q: ch.query(q))
    check("views", "INSERT 200,000 rows into measurements_f64 (100 names)", lambda: ch.query(
        "INSERT INTO %s.measurements_f64 (timeseries_name, timeseries_key, timestamp_ns, datum) "
        "SELECT concat('m', toString(number %% 100)), number %% 1000, number, 1 FROM system.numbers LIMIT 200000" % db))
    budget = " SETTINGS max_rows_to_read = 50000"
    check("views", "samples_f64 WHERE timeseries_name = ... reads under 50,000 rows: the filter is pushed into the view",
          lambda: expect(scalar(ch, "SELECT count() FROM %s.samples_f64 WHERE timeseries_name = 'm7'%s" % (db, budget)), "2000"))

    def exceeds():
        try:
            ch.query("SELECT count() FROM %s.samples_f64 WHERE datum = 1%s" % (db, budget))
        except RuntimeError as e:
            return expect("max_rows_to_read" in str(e) or "Limit for rows" in str(e), True)
        raise AssertionError("a read of every row stayed within max_rows_to_read")
    check("views", "control: samples_f64 WHERE datum = 1 exceeds the same budget", exceeds)


def main():
    lib, binary, v1_sql, work = sys.argv[1:5]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # A fresh data directory each run: the checks count rows.
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    config = os.path.join(work, "config.xml")
    # One-shard cluster `holdfast` whose only replica is this process, so
    # the Distributed DDL and a FINAL read through it run here.
    with open(config, "w") as f:
        f.write("""<clickhouse>
  <remote_servers><holdfast><shard><internal_replication>true</internal_replication>
    <replica><host>localhost</host><port>9000</port></replica></shard></holdfast></remote_servers>
  <tcp_port>9000</tcp_port>
</clickhouse>
""")
    began = time.monotonic()
    ch = CHDB(lib, os.path.join(work, "data"), config)
    check("engine", "SELECT version()", lambda: scalar(ch, "SELECT version()"))
    single_server(ch, binary, "holdfast")
    cluster_parsed(ch, binary, "holdfast_cluster")
    cluster(ch, binary, "holdfast_cluster")
    migrate_v1(ch, binary, v1_sql)
    modern(ch, binary, "holdfast_modern", repo)
    queries(ch, "holdfast", repo)
    docs(ch, binary, repo)
    views_pushdown(ch, binary)
    ch.close()
    failed = [r for r in results if not r[2]]
    by = {}
    for s, _, ok, _ in results:
        p, f = by.get(s, (0, 0))
        by[s] = (p + ok, f + (not ok))
    print("modern-check: %s in %.1fs: %s" % ("FAIL" if failed else "PASS", time.monotonic() - began,
          ", ".join("%s %d passed %d failed" % (s, p, f) for s, (p, f) in by.items())))
    for s, n, _, d in failed:
        print("  FAIL %s %s -- %s" % (s, n, d))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
