// Package chtest finds the ClickHouse server tests run against.
//
// `make test` starts a private server and exports its native-protocol address
// as HOLDFAST_CLICKHOUSE (host:port). Without it a test that needs ClickHouse
// is skipped on a developer's machine and FAILS under CI=true, so a CI run can
// never pass by silently skipping the real-database tests.
package chtest

import (
	"os"
	"testing"
)

// EnvAddr is the variable that holds the server's host:port.
const EnvAddr = "HOLDFAST_CLICKHOUSE"

// Addr returns the server's address, or ends the test (skip locally, fail
// under CI) when there is none.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr != "" {
		return addr
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set but CI=true: ClickHouse tests must run in CI (use make test)", EnvAddr)
	}
	t.Skipf("%s is not set: run `make test` to run this test against a private ClickHouse", EnvAddr)
	return ""
}
