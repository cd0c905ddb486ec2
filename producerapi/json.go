package producerapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// JSON encoding (version 1). A page is
//
//	{"version":1,"producer":"...","incarnation":"...","token":"...","dropped":0,
//	 "more":false,"samples":[SAMPLE...]}
//
// and a sample is
//
//	{"target":{"name":"virtual_machine","fields":[{"name":"vm","type":"u64","value":7}, ...]},
//	 "metric":{"name":"cpu_busy","fields":[...]},
//	 "timestamp_ns":1700000000000000000,
//	 "datum":{"type":"f64","value":0.25}}
//
// Datum members: "type"; "missing": true for a missing datum; "start_time_ns"
// for cumulative and histogram types; "value" for scalars; "bins", "counts",
// "min", "max", "sum" for histograms. Integers are JSON numbers written
// exactly (readers must not go through float64). Floats are numbers in their
// shortest exact form; non-finite floats are strings: "NaN", "+Inf", "-Inf",
// and a NaN with a non-default payload is "NaN:0x<16 hex digits of its bits>"
// (f32: 8 hex digits), so JSON round-trips values exactly too. bytes are
// base64 (standard, padded), ip_addr and uuid are their text forms.

type jsonPage struct {
	Version     int               `json:"version"`
	Producer    string            `json:"producer"`
	Incarnation string            `json:"incarnation"`
	Token       string            `json:"token"`
	Dropped     uint64            `json:"dropped"`
	More        bool              `json:"more"`
	Samples     []json.RawMessage `json:"samples"`
}

type jsonNamed struct {
	Name   string      `json:"name"`
	Fields []jsonField `json:"fields"`
}

type jsonField struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

type jsonDatum struct {
	Type        string            `json:"type"`
	Missing     bool              `json:"missing,omitempty"`
	StartTimeNs *int64            `json:"start_time_ns,omitempty"`
	Value       json.RawMessage   `json:"value,omitempty"`
	Bins        []json.RawMessage `json:"bins,omitempty"`
	Counts      []uint64          `json:"counts,omitempty"`
	Min         json.RawMessage   `json:"min,omitempty"`
	Max         json.RawMessage   `json:"max,omitempty"`
	Sum         json.RawMessage   `json:"sum,omitempty"`
}

type jsonSample struct {
	Target      jsonNamed `json:"target"`
	Metric      jsonNamed `json:"metric"`
	TimestampNs int64     `json:"timestamp_ns"`
	Datum       jsonDatum `json:"datum"`
}

// MarshalPageJSON encodes a page as JSON.
func MarshalPageJSON(p *Page) ([]byte, error) {
	jp := jsonPage{Version: PageVersion, Producer: p.Producer, Incarnation: p.Incarnation, Token: p.Token,
		Dropped: p.Dropped, More: p.More, Samples: make([]json.RawMessage, len(p.Samples))}
	for i := range p.Samples {
		b, err := MarshalSampleJSON(&p.Samples[i])
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		jp.Samples[i] = b
	}
	return json.Marshal(jp)
}

// UnmarshalPageJSON decodes a JSON page; samples are appended to p.Samples[:0].
func UnmarshalPageJSON(b []byte, p *Page) error { return unmarshalPageJSON(b, p, nil) }

// UnmarshalPageJSON is like the package function UnmarshalPageJSON, with
// the decoder's Limits.
func (sd *SampleDecoder) UnmarshalPageJSON(b []byte, p *Page) error {
	return unmarshalPageJSON(b, p, sd.Limits.resolve())
}

// unmarshalPageJSON reads the page object member by member and the samples
// array one element at a time, so the sample count is checked against the
// limits as it grows, before a sample beyond it is decoded, rather than
// after encoding/json has built the whole array.
func unmarshalPageJSON(b []byte, p *Page, lim *pageLimits) error {
	if err := lim.checkPageBytes(len(b)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	bad := func(err error) error { return fmt.Errorf("%w: page JSON: %v", ErrMalformed, err) }
	if tok, err := dec.Token(); err != nil {
		return bad(err)
	} else if tok != json.Delim('{') {
		return bad(fmt.Errorf("not an object"))
	}
	var jp jsonPage
	samples := p.Samples[:0]
	seenSamples := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		key, _ := tok.(string)
		var dst any
		switch key {
		case "version":
			dst = &jp.Version
		case "producer":
			dst = &jp.Producer
		case "incarnation":
			dst = &jp.Incarnation
		case "token":
			dst = &jp.Token
		case "dropped":
			dst = &jp.Dropped
		case "more":
			dst = &jp.More
		case "samples":
			if seenSamples {
				return bad(fmt.Errorf("samples given twice"))
			}
			seenSamples = true
			if samples, err = unmarshalSamplesJSON(dec, samples, lim); err != nil {
				p.Samples = samples
				return err
			}
			continue
		default:
			return bad(fmt.Errorf("unknown field %q", key))
		}
		if err := dec.Decode(dst); err != nil {
			return bad(fmt.Errorf("%s: %v", key, err))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad(fmt.Errorf("trailing data after the JSON value"))
	}
	if jp.Version != PageVersion {
		return fmt.Errorf("%w: unsupported page version %d (this build reads %d)", ErrMalformed, jp.Version, PageVersion)
	}
	*p = Page{Version: jp.Version, Producer: jp.Producer, Incarnation: jp.Incarnation, Token: jp.Token,
		Dropped: jp.Dropped, More: jp.More, Samples: samples}
	if p.Token == "" && len(p.Samples) > 0 {
		return fmt.Errorf("%w: page with %d samples has no token", ErrMalformed, len(p.Samples))
	}
	return nil
}

// unmarshalSamplesJSON reads the samples array (or null) from dec.
func unmarshalSamplesJSON(dec *json.Decoder, samples []Sample, lim *pageLimits) ([]Sample, error) {
	bad := func(err error) error { return fmt.Errorf("%w: page JSON: samples: %v", ErrMalformed, err) }
	tok, err := dec.Token()
	if err != nil {
		return samples, bad(err)
	}
	if tok == nil {
		return samples, nil // "samples": null
	}
	if tok != json.Delim('[') {
		return samples, bad(fmt.Errorf("not an array"))
	}
	for i := 0; dec.More(); i++ {
		if err := lim.checkSamples(uint64(i) + 1); err != nil {
			return samples, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return samples, bad(err)
		}
		var s Sample
		if err := unmarshalSampleJSON(raw, &s, lim); err != nil {
			return samples, fmt.Errorf("sample %d: %w", i, err)
		}
		samples = append(samples, s)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return samples, bad(err)
	}
	return samples, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// MarshalSampleJSON encodes one sample as JSON.
func MarshalSampleJSON(s *Sample) ([]byte, error) {
	js := jsonSample{Target: namedJSON(s.Target), Metric: namedJSON(s.Metric), TimestampNs: s.TimestampNs}
	d := &s.Datum
	js.Datum = jsonDatum{Type: d.Type.String(), Missing: d.Missing}
	if d.Type.HasStartTime() {
		st := d.StartTimeNs
		js.Datum.StartTimeNs = &st
	}
	if !d.Missing {
		switch d.Type {
		case DatumBool:
			js.Datum.Value = jsonBool(d.Bool)
		case DatumI8, DatumI16, DatumI32, DatumI64, DatumCumulativeI64:
			js.Datum.Value = json.RawMessage(strconv.FormatInt(d.Int, 10))
		case DatumU8, DatumU16, DatumU32, DatumU64, DatumCumulativeU64:
			js.Datum.Value = json.RawMessage(strconv.FormatUint(d.Uint, 10))
		case DatumF32, DatumCumulativeF32:
			js.Datum.Value = jsonF32(d.F32)
		case DatumF64, DatumCumulativeF64:
			js.Datum.Value = jsonF64(d.F64)
		case DatumString:
			js.Datum.Value = jsonString(d.Str)
		case DatumBytes:
			js.Datum.Value = jsonString(base64.StdEncoding.EncodeToString(d.Bytes))
		case DatumHistogramI64:
			if h := d.HistI64; h != nil {
				js.Datum.Bins, js.Datum.Counts = mapRaw(h.Bins, jsonI64), h.Counts
				js.Datum.Min, js.Datum.Max, js.Datum.Sum = jsonI64(h.Min), jsonI64(h.Max), jsonI64(h.Sum)
			}
		case DatumHistogramU64:
			if h := d.HistU64; h != nil {
				js.Datum.Bins, js.Datum.Counts = mapRaw(h.Bins, jsonU64), h.Counts
				js.Datum.Min, js.Datum.Max, js.Datum.Sum = jsonU64(h.Min), jsonU64(h.Max), jsonU64(h.Sum)
			}
		case DatumHistogramF64:
			if h := d.HistF64; h != nil {
				js.Datum.Bins, js.Datum.Counts = mapRaw(h.Bins, jsonF64), h.Counts
				js.Datum.Min, js.Datum.Max, js.Datum.Sum = jsonF64(h.Min), jsonF64(h.Max), jsonF64(h.Sum)
			}
		}
	}
	return json.Marshal(js)
}

func mapRaw[T any](vs []T, f func(T) json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(vs))
	for i, v := range vs {
		out[i] = f(v)
	}
	if out == nil {
		out = []json.RawMessage{}
	}
	return out
}

func jsonI64(v int64) json.RawMessage  { return json.RawMessage(strconv.FormatInt(v, 10)) }
func jsonU64(v uint64) json.RawMessage { return json.RawMessage(strconv.FormatUint(v, 10)) }
func jsonBool(b bool) json.RawMessage  { return json.RawMessage(strconv.FormatBool(b)) }
func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func jsonF64(f float64) json.RawMessage {
	switch {
	case math.IsInf(f, 1):
		return jsonString("+Inf")
	case math.IsInf(f, -1):
		return jsonString("-Inf")
	case math.IsNaN(f):
		if bits := math.Float64bits(f); bits != math.Float64bits(math.NaN()) {
			return jsonString(fmt.Sprintf("NaN:0x%016x", bits))
		}
		return jsonString("NaN")
	}
	if f == 0 && math.Signbit(f) {
		return json.RawMessage("-0")
	}
	return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64))
}

func jsonF32(f float32) json.RawMessage {
	f64 := float64(f)
	switch {
	case math.IsInf(f64, 1):
		return jsonString("+Inf")
	case math.IsInf(f64, -1):
		return jsonString("-Inf")
	case f != f:
		if bits := math.Float32bits(f); bits != math.Float32bits(float32(math.NaN())) {
			return jsonString(fmt.Sprintf("NaN:0x%08x", bits))
		}
		return jsonString("NaN")
	}
	if f == 0 && math.Signbit(f64) {
		return json.RawMessage("-0")
	}
	return json.RawMessage(strconv.FormatFloat(f64, 'g', -1, 32))
}

func namedJSON(n Named) jsonNamed {
	out := jsonNamed{Name: n.Name, Fields: make([]jsonField, len(n.Fields))}
	for i, f := range n.Fields {
		jf := jsonField{Name: f.Name, Type: f.Value.Type.String()}
		v := &f.Value
		switch v.Type {
		case FieldString:
			jf.Value = jsonString(v.Str)
		case FieldBool:
			jf.Value = jsonBool(v.Bool)
		case FieldI8, FieldI16, FieldI32, FieldI64:
			jf.Value = jsonI64(v.Int)
		case FieldU8, FieldU16, FieldU32, FieldU64:
			jf.Value = jsonU64(v.Uint)
		case FieldIPAddr:
			jf.Value = jsonString(v.IP.String())
		case FieldUUID:
			jf.Value = jsonString(uuid.UUID(v.UUID).String())
		default:
			jf.Value = json.RawMessage("null")
		}
		out.Fields[i] = jf
	}
	return out
}

// UnmarshalSampleJSON decodes one JSON sample. It checks structure and
// types only; call Validate for limits and semantics.
func UnmarshalSampleJSON(b []byte, s *Sample) error { return unmarshalSampleJSON(b, s, nil) }

func unmarshalSampleJSON(b []byte, s *Sample, lim *pageLimits) error {
	var js jsonSample
	if err := strictUnmarshal(b, &js); err != nil {
		return fmt.Errorf("%w: sample JSON: %v", ErrMalformed, err)
	}
	// The element is already bounded by the page's bytes; these counts
	// bound what it expands to (Field and bin slices) before they are built.
	if lim != nil {
		if n := len(js.Target.Fields) + len(js.Metric.Fields); n > lim.maxFields {
			return &LimitError{What: "fields", Count: uint64(n), Limit: lim.maxFields, Sample: -1}
		}
		if n := len(js.Datum.Bins); n > lim.maxBins {
			return &LimitError{What: "histogram bins", Count: uint64(n), Limit: lim.maxBins, Sample: -1}
		}
	}
	var err error
	if s.Target, err = namedFromJSON(js.Target); err != nil {
		return err
	}
	if s.Metric, err = namedFromJSON(js.Metric); err != nil {
		return err
	}
	s.TimestampNs = js.TimestampNs
	return datumFromJSON(&js.Datum, &s.Datum)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func namedFromJSON(jn jsonNamed) (Named, error) {
	n := Named{Name: jn.Name}
	if len(jn.Fields) > 0 {
		n.Fields = make([]Field, len(jn.Fields))
	}
	for i, jf := range jn.Fields {
		t, err := ParseFieldType(jf.Type)
		if err != nil {
			return n, malformed("field %q: %v", jf.Name, err)
		}
		v := FieldValue{Type: t}
		switch t {
		case FieldString:
			err = json.Unmarshal(jf.Value, &v.Str)
		case FieldBool:
			err = json.Unmarshal(jf.Value, &v.Bool)
		case FieldI8, FieldI16, FieldI32, FieldI64:
			v.Int, err = strconv.ParseInt(string(jf.Value), 10, 64)
		case FieldU8, FieldU16, FieldU32, FieldU64:
			v.Uint, err = strconv.ParseUint(string(jf.Value), 10, 64)
		case FieldIPAddr:
			var s string
			if err = json.Unmarshal(jf.Value, &s); err == nil {
				v.IP, err = netip.ParseAddr(s)
			}
		case FieldUUID:
			var s string
			if err = json.Unmarshal(jf.Value, &s); err == nil {
				var u uuid.UUID
				u, err = uuid.Parse(s)
				v.UUID = u
			}
		}
		if err != nil {
			return n, malformed("field %q of type %s: bad value %s: %v", jf.Name, t, truncate(jf.Value), err)
		}
		n.Fields[i] = Field{Name: jf.Name, Value: v}
	}
	return n, nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func parseF64(raw json.RawMessage) (float64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		switch {
		case s == "NaN":
			return math.NaN(), nil
		case s == "+Inf":
			return math.Inf(1), nil
		case s == "-Inf":
			return math.Inf(-1), nil
		case strings.HasPrefix(s, "NaN:0x"):
			bits, err := strconv.ParseUint(s[6:], 16, 64)
			if err != nil || !math.IsNaN(math.Float64frombits(bits)) {
				return 0, fmt.Errorf("bad NaN payload %q", s)
			}
			return math.Float64frombits(bits), nil
		}
		return 0, fmt.Errorf("bad float %q", s)
	}
	return strconv.ParseFloat(string(raw), 64)
}

func parseF32(raw json.RawMessage) (float32, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		if strings.HasPrefix(s, "NaN:0x") {
			bits, err := strconv.ParseUint(s[6:], 16, 32)
			f := math.Float32frombits(uint32(bits))
			if err != nil || f == f {
				return 0, fmt.Errorf("bad NaN payload %q", s)
			}
			return f, nil
		}
		f, err := parseF64(raw)
		return float32(f), err
	}
	f, err := strconv.ParseFloat(string(raw), 32)
	return float32(f), err
}

func parseList[T any](raws []json.RawMessage, parse func(json.RawMessage) (T, error)) ([]T, error) {
	out := make([]T, len(raws))
	for i, r := range raws {
		v, err := parse(r)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func parseI64(r json.RawMessage) (int64, error)  { return strconv.ParseInt(string(r), 10, 64) }
func parseU64(r json.RawMessage) (uint64, error) { return strconv.ParseUint(string(r), 10, 64) }

func histogramFromJSON[T int64 | uint64 | float64](jd *jsonDatum, parse func(json.RawMessage) (T, error)) (*Histogram[T], error) {
	bins, err := parseList(jd.Bins, parse)
	if err != nil {
		return nil, fmt.Errorf("bins: %w", err)
	}
	h := &Histogram[T]{Bins: bins, Counts: jd.Counts}
	if h.Counts == nil {
		h.Counts = []uint64{}
	}
	for _, p := range []struct {
		name string
		raw  json.RawMessage
		dst  *T
	}{{"min", jd.Min, &h.Min}, {"max", jd.Max, &h.Max}, {"sum", jd.Sum, &h.Sum}} {
		if len(p.raw) == 0 {
			return nil, fmt.Errorf("histogram without %s", p.name)
		}
		if *p.dst, err = parse(p.raw); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return h, nil
}

func datumFromJSON(jd *jsonDatum, d *Datum) error {
	t, err := ParseDatumType(jd.Type)
	if err != nil {
		return malformed("datum: %v", err)
	}
	*d = Datum{Type: t, Missing: jd.Missing}
	if jd.StartTimeNs != nil {
		d.StartTimeNs = *jd.StartTimeNs
	}
	if d.Missing {
		return nil
	}
	if !t.IsHistogram() && len(jd.Value) == 0 {
		return malformed("datum of type %s has no value", t)
	}
	switch t {
	case DatumBool:
		err = json.Unmarshal(jd.Value, &d.Bool)
	case DatumI8, DatumI16, DatumI32, DatumI64, DatumCumulativeI64:
		d.Int, err = parseI64(jd.Value)
	case DatumU8, DatumU16, DatumU32, DatumU64, DatumCumulativeU64:
		d.Uint, err = parseU64(jd.Value)
	case DatumF32, DatumCumulativeF32:
		d.F32, err = parseF32(jd.Value)
	case DatumF64, DatumCumulativeF64:
		d.F64, err = parseF64(jd.Value)
	case DatumString:
		err = json.Unmarshal(jd.Value, &d.Str)
	case DatumBytes:
		var s string
		if err = json.Unmarshal(jd.Value, &s); err == nil {
			d.Bytes, err = base64.StdEncoding.DecodeString(s)
			if d.Bytes == nil {
				d.Bytes = []byte{}
			}
		}
	case DatumHistogramI64:
		d.HistI64, err = histogramFromJSON(jd, parseI64)
	case DatumHistogramU64:
		d.HistU64, err = histogramFromJSON(jd, parseU64)
	case DatumHistogramF64:
		d.HistF64, err = histogramFromJSON(jd, parseF64)
	}
	if err != nil {
		return malformed("datum of type %s: %v", t, err)
	}
	return nil
}
