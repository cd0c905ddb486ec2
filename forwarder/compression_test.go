package forwarder

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
)

// countingProxy forwards TCP connections from a loopback listener to
// target and counts the bytes clients send; once stallAt (if set) bytes
// were sent, it stops reading from the clients, as a server that hangs.
type countingProxy struct {
	ln      net.Listener
	sent    atomic.Int64
	stallAt atomic.Int64
	done    chan struct{}
	wg      sync.WaitGroup
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.forward(s, c); s.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
			go func() { <-p.done; c.Close(); s.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

// forward copies the client's bytes to the server, counting them, until
// either side ends or the proxy stalls.
func (p *countingProxy) forward(server, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if at := p.stallAt.Load(); at > 0 && p.sent.Load() >= at {
			<-p.done
			return
		}
		n, err := client.Read(buf)
		if n > 0 {
			p.sent.Add(int64(n))
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close ends every connection and waits for the proxy's goroutines.
func (p *countingProxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.ln.Close()
	p.wg.Wait()
}

// TestCompressionOnTheWire delivers the same samples with each
// --clickhouse-compression through a proxy that counts what the forwarder
// sends: every sample arrives each time, and without compression the
// forwarder sends several times what LZ4 and ZSTD send.
func TestCompressionOnTheWire(t *testing.T) {
	addr := chtest.Addr(t)
	sent := map[Compression]int64{}
	for _, c := range []Compression{CompressionLZ4, CompressionZSTD, CompressionNone} {
		t.Run(string(c), func(t *testing.T) {
			e := newEnv(t, addr)
			proxy := newCountingProxy(t, addr)
			samples := sampletest.NewFleet(20).Append(nil, 4_400, 1_700_000_000_000_000_000)
			e.appendPages(samples, 440)
			opts := e.options()
			opts.Addr, opts.Compression = proxy.ln.Addr().String(), c
			f, stop := e.start(opts)
			e.flush(f, 60*time.Second)
			stop()
			f.Close()
			if got := e.count(true); got != uint64(len(samples)) {
				t.Fatalf("%d samples arrived, want %d", got, len(samples))
			}
			proxy.close()
			sent[c] = proxy.sent.Load()
			t.Logf("%s: %d bytes sent", c, sent[c])
		})
	}
	if t.Failed() {
		return
	}
	if sent[CompressionNone] < 2*sent[CompressionLZ4] || sent[CompressionZSTD] >= sent[CompressionLZ4] {
		t.Fatalf("bytes sent: %v; want none at least twice lz4, and zstd below lz4", sent)
	}
}

// TestCompressionValues: the flag's values, and a refusal naming the
// choices for anything else, before anything is dialled.
func TestCompressionValues(t *testing.T) {
	for in, want := range map[string]Compression{"": CompressionLZ4, "lz4": CompressionLZ4, " ZSTD": CompressionZSTD, "none": CompressionNone} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"gzip", "lz4hc", "off", "brotli"} {
		if _, err := ParseCompression(in); err == nil || !strings.Contains(err.Error(), "lz4, zstd, none") {
			t.Errorf("ParseCompression(%q) = %v, want an error naming the choices", in, err)
		}
		if _, err := DialWith(ConnOptions{Addr: "127.0.0.1:9000", Compression: Compression(in)}); err == nil {
			t.Errorf("DialWith with compression %q dialled", in)
		}
		if _, err := (Options{Addr: "127.0.0.1:9000", SessionDir: t.TempDir(), Compression: Compression(in)}).withDefaults(); err == nil || !strings.Contains(err.Error(), "compression") {
			t.Errorf("Options with compression %q: %v, want a refusal naming the compression", in, err)
		}
	}
}
