package chtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Variables `scripts/chcluster.sh start` prints and `make test` exports.
const (
	EnvClusterAddrs = "HOLDFAST_CLICKHOUSE_CLUSTER"      // a1,a2,a3,a4: shard 1 = a1,a2; shard 2 = a3,a4
	EnvClusterName  = "HOLDFAST_CLICKHOUSE_CLUSTER_NAME" // the <remote_servers> cluster
	EnvClusterDir   = "HOLDFAST_CLICKHOUSE_CLUSTER_DIR"  // where chcluster.sh keeps it
)

// Cluster is the local 2 shards x 2 replicas ClickHouse cluster.
type Cluster struct {
	Addrs []string // replica N (1..4) is Addrs[N-1]
	Name  string
	Dir   string
}

// ClusterEnv returns the cluster tests run against, or ends the test (skip
// locally, fail under CI) when there is none.
func ClusterEnv(t testing.TB) Cluster {
	t.Helper()
	c := Cluster{Name: os.Getenv(EnvClusterName), Dir: os.Getenv(EnvClusterDir)}
	if a := os.Getenv(EnvClusterAddrs); a != "" {
		c.Addrs = strings.Split(a, ",")
	}
	if len(c.Addrs) == 4 && c.Name != "" && c.Dir != "" {
		return c
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s, %s and %s are not set but CI=true: cluster tests must run in CI (use make test)", EnvClusterAddrs, EnvClusterName, EnvClusterDir)
	}
	t.Skipf("%s is not set: run `make test`, or eval the output of scripts/chcluster.sh start DIR", EnvClusterAddrs)
	return c
}

// Kill SIGKILLs replica n (1..4).
func (c Cluster) Kill(t testing.TB, n int) { c.run(t, "kill", n) }

// Restart starts replica n again on its ports and data and waits until it
// answers.
func (c Cluster) Restart(t testing.TB, n int) { c.run(t, "restart", n) }

func (c Cluster) run(t testing.TB, verb string, n int) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "chcluster.sh")
	out, err := exec.Command(script, verb, c.Dir, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("chcluster.sh %s %d: %v\n%s", verb, n, err, out)
	}
}
