package producerapi_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestSchemaVersionGolden pins SchemaVersion: versions are stored in
// ClickHouse and sent to the registry, so collectors of different builds must
// compute the same ones. The expected values were computed independently (a
// few lines of Python over the definition in DESIGN.md).
func TestSchemaVersionGolden(t *testing.T) {
	tests := []struct {
		names []string
		want  uint32
	}{
		{nil, 2166136261}, // the FNV-1a 32 offset basis: no fields
		{[]string{"a"}, 723832900},
		{[]string{"vm", "sled", "project", "team", "slot"}, 1222077810},
		{[]string{"slot", "team", "project", "sled", "vm"}, 1222077810}, // order does not matter
		{[]string{"cpu", "on", "z"}, 2694224904},
	}
	for _, tt := range tests {
		if got := pa.SchemaVersion(tt.names); got != tt.want {
			t.Errorf("SchemaVersion(%q) = %d, want %d", tt.names, got, tt.want)
		}
	}
	s := goldenSample()
	if got := pa.SchemaOf(&s).Version; got != 2151010637 {
		t.Fatalf("SchemaOf(golden).Version = %d, want 2151010637", got)
	}
	// The 0 byte after each name keeps ["ab"] and ["a", "b"] apart.
	if pa.SchemaVersion([]string{"ab"}) == pa.SchemaVersion([]string{"a", "b"}) {
		t.Fatal(`["ab"] and ["a" "b"] have the same version`)
	}
}

// TestSchemaRegistryVersions: a metric that gains or loses a field (a rolling
// upgrade) is a new version, accepted, and both versions stay accepted side
// by side; only a contradiction within one version is refused. Today's code
// refused the new field set as a conflict.
func TestSchemaRegistryVersions(t *testing.T) {
	reg := pa.NewSchemaRegistry()
	v1 := goldenSample()
	v2 := goldenSample()
	v2.Metric.Fields = append(v2.Metric.Fields, pa.Field{Name: "x", Value: pa.BoolValue(true)})
	v0 := goldenSample()
	v0.Metric.Fields = v0.Metric.Fields[:2] // lost "on"
	for i, s := range []*pa.Sample{&v1, &v2, &v0} {
		if added, err := reg.Check(s); err != nil || !added {
			t.Fatalf("version %d: added=%v err=%v", i, added, err)
		}
	}
	for i, s := range []*pa.Sample{&v1, &v2, &v0} { // old and new side by side
		if added, err := reg.Check(s); err != nil || added {
			t.Fatalf("version %d again: added=%v err=%v", i, added, err)
		}
	}
	got := reg.Schemas()
	if len(got) != 3 {
		t.Fatalf("Schemas() holds %d schemas, want 3 versions: %+v", len(got), got)
	}
	want := map[uint32]int{2151010637: 6, 3157266621: 7, 3172726688: 5}
	for _, sc := range got {
		if sc.Name != "virtual_machine:cpu_busy" || want[sc.Version] != len(sc.Fields) {
			t.Errorf("schema %s version %d with %d fields unexpected", sc.Name, sc.Version, len(sc.Fields))
		}
	}
	// A contradiction inside version 2: field "x" changes type.
	bad := goldenSample()
	bad.Metric.Fields = append(bad.Metric.Fields, pa.Field{Name: "x", Value: pa.U8Value(1)})
	_, err := reg.Check(&bad)
	var conflict *pa.SchemaConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, pa.ErrSchemaConflict) || conflict.Version != 3157266621 ||
		!strings.Contains(err.Error(), `field "x" has type u8, schema says bool`) || !strings.Contains(err.Error(), "version 3157266621") {
		t.Fatalf("contradiction within a version: %v", err)
	}
}

// TestSchemaRegistryBounded: the registry remembers at most its maximum;
// samples beyond are accepted, counted, and not remembered.
func TestSchemaRegistryBounded(t *testing.T) {
	reg := pa.NewSchemaRegistrySize(10)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				s := goldenSample()
				s.Metric.Name = fmt.Sprintf("m%d", i)
				if _, err := reg.Check(&s); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(reg.Schemas()); n != 10 {
		t.Fatalf("registry holds %d schemas, bound 10", n)
	}
	// The 40 names over the bound are counted at each of their 4 checks.
	if n := reg.Overflowed(); n != 160 {
		t.Fatalf("Overflowed = %d, want 160", n)
	}
}

// TestKeyBytesHashToTheKey: the forwarder hashes AppendTimeseriesKeyBytes a
// second way to detect key collisions; its FNV must be the key itself.
func TestKeyBytesHashToTheKey(t *testing.T) {
	in := append(sampletest.EveryDatumType(1), sampletest.NewFleet(30).Append(nil, 500, 7)...)
	in = append(in, goldenSample())
	var buf []byte
	for i := range in {
		buf = pa.AppendTimeseriesKeyBytes(buf[:0], &in[i])
		if got, want := pa.HashTimeseriesKeyBytes(buf), pa.TimeseriesKey(&in[i]); got != want {
			t.Fatalf("sample %d: hash of key bytes %#x, TimeseriesKey %#x", i, got, want)
		}
		if got, want := pa.SchemaVersionOf(&in[i]), pa.SchemaOf(&in[i]).Version; got != want {
			t.Fatalf("sample %d: SchemaVersionOf %d, SchemaOf %d", i, got, want)
		}
	}
}

func TestSchemaID(t *testing.T) {
	s := goldenSample()
	sc := pa.SchemaOf(&s)
	if got := sc.ID(); got != "virtual_machine:cpu_busy@2151010637" {
		t.Fatalf("ID() = %q", got)
	}
}
