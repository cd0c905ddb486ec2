-- holdfast ClickHouse schema, version 1
CREATE DATABASE IF NOT EXISTS holdfast_v1_fixture;

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.schema_version (version UInt32, applied_ns Int64) ENGINE = MergeTree() ORDER BY version;

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_bool (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(UInt8),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_i8 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(Int8),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_i16 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(Int16),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_i32 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(Int32),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_i64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(Int64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_u8 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(UInt8),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_u16 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(UInt16),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_u32 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(UInt32),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_u64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(UInt64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_f32 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(Float32),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_f64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(Float64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_string (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(String),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_bytes (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  datum Nullable(String),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_cumulative_i64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  datum Nullable(Int64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_cumulative_u64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  datum Nullable(UInt64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_cumulative_f32 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  datum Nullable(Float32),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_cumulative_f64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  datum Nullable(Float64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_histogram_i64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  bins Array(Int64),
  counts Array(UInt64),
  min Nullable(Int64),
  max Nullable(Int64),
  sum_of_samples Nullable(Int64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_histogram_u64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  bins Array(UInt64),
  counts Array(UInt64),
  min Nullable(UInt64),
  max Nullable(UInt64),
  sum_of_samples Nullable(UInt64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.measurements_histogram_f64 (
  timeseries_name String,
  timeseries_key UInt64,
  timestamp_ns Int64,
  start_time_ns Int64,
  bins Array(Float64),
  counts Array(UInt64),
  min Nullable(Float64),
  max Nullable(Float64),
  sum_of_samples Nullable(Float64),
  timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, 604800000000000)
ORDER BY (timeseries_name, timeseries_key, timestamp_ns);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_string (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value String
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_bool (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value UInt8
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_i8 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value Int8
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_i16 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value Int16
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_i32 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value Int32
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_i64 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value Int64
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_u8 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value UInt8
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_u16 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value UInt16
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_u32 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value UInt32
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_u64 (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_ip_addr (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value String
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.fields_uuid (
  timeseries_name String,
  timeseries_key UInt64,
  field_name String,
  field_value UUID
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, field_name, field_value, timeseries_key);

CREATE TABLE IF NOT EXISTS holdfast_v1_fixture.timeseries_schema (
  timeseries_name String,
  fields_name Array(String),
  fields_type Array(String),
  fields_source Array(String),
  datum_type String,
  version UInt16,
  created_ns Int64
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, version);

