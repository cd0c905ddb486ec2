package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/golang/snappy"
)

// remoteWriteSink is the agent's remote-write endpoint in `holdfast bench
// peer`: it counts requests and bytes, and snappy-decodes each body and
// counts its samples without building any message (to prove delivery), then
// answers 204. It costs the bench process, not the agent.
type remoteWriteSink struct {
	requests, bytes, series, samples, bad atomic.Int64

	mu       sync.Mutex
	body     bytes.Buffer // reused: one request at a time decodes
	decoded  []byte
	lastErr  error
	maxBytes int64
}

func newRemoteWriteSink() *remoteWriteSink { return &remoteWriteSink{maxBytes: 64 << 20} }

func (s *remoteWriteSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST a remote-write request", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body.Reset()
	n, err := s.body.ReadFrom(io.LimitReader(r.Body, s.maxBytes+1))
	if err == nil && n > s.maxBytes {
		err = fmt.Errorf("body over %d bytes", s.maxBytes)
	}
	var series, samples int
	if err == nil {
		s.decoded, err = snappyDecode(s.decoded, s.body.Bytes())
	}
	if err == nil {
		series, samples, err = countRemoteWrite(s.decoded)
	}
	if err != nil {
		s.bad.Add(1)
		s.lastErr = err
		// 400: Prometheus drops a request it cannot fix rather than retry.
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	s.bytes.Add(n)
	s.series.Add(int64(series))
	s.samples.Add(int64(samples))
	w.WriteHeader(http.StatusNoContent)
}

// snappyDecode decodes a snappy block into dst's storage.
func snappyDecode(dst, src []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return dst, fmt.Errorf("snappy: %w", err)
	}
	if n > 256<<20 {
		return dst, fmt.Errorf("snappy: decoded length %d over 256 MiB", n)
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out, err := snappy.Decode(dst[:cap(dst)], src)
	if err != nil {
		return dst, fmt.Errorf("snappy: %w", err)
	}
	return out, nil
}

var errProto = errors.New("remote write: malformed protobuf")

// countRemoteWrite counts the timeseries and samples of a remote-write 1.0
// WriteRequest (prometheus/prompb) by walking the protobuf wire format:
// WriteRequest.timeseries is field 1, TimeSeries.samples field 2; other
// fields (labels, exemplars, histograms, metadata) are skipped.
func countRemoteWrite(b []byte) (series, samples int, err error) {
	err = walkProto(b, func(field int, wire int, v []byte) error {
		if field != 1 || wire != 2 {
			return nil
		}
		series++
		return walkProto(v, func(field int, wire int, _ []byte) error {
			if field == 2 && wire == 2 {
				samples++
			}
			return nil
		})
	})
	return series, samples, err
}

// walkProto calls fn for each field of a protobuf message: its number, wire
// type and, for length-delimited fields, the bytes. It never reads past b.
func walkProto(b []byte, fn func(field, wire int, v []byte) error) error {
	for len(b) > 0 {
		tag, n := uvarint(b)
		if n <= 0 {
			return fmt.Errorf("%w: bad tag", errProto)
		}
		b = b[n:]
		field, wire := int(tag>>3), int(tag&7)
		if field == 0 {
			return fmt.Errorf("%w: field number 0", errProto)
		}
		var v []byte
		switch wire {
		case 0: // varint
			_, n = uvarint(b)
			if n <= 0 {
				return fmt.Errorf("%w: bad varint", errProto)
			}
			b = b[n:]
		case 1: // 64-bit
			if len(b) < 8 {
				return fmt.Errorf("%w: short fixed64", errProto)
			}
			b = b[8:]
		case 2: // length-delimited
			l, n := uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("%w: bad length", errProto)
			}
			v, b = b[n:n+int(l)], b[n+int(l):]
		case 5: // 32-bit
			if len(b) < 4 {
				return fmt.Errorf("%w: short fixed32", errProto)
			}
			b = b[4:]
		default:
			return fmt.Errorf("%w: wire type %d", errProto, wire)
		}
		if err := fn(field, wire, v); err != nil {
			return err
		}
	}
	return nil
}

func uvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }
