// Package chserver starts and stops a private ClickHouse server as a plain
// process, for benchmarks and tools: the packaged config is copied with a
// private data directory and free loopback ports (the recipe of
// scripts/clickhouse.sh, in Go so the holdfast binary can do it anywhere).
package chserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Server is a running private ClickHouse.
type Server struct {
	Dir  string
	Addr string // native protocol host:port
	// SecureAddr is the TLS native port's host:port when Extra asked for
	// TLS, else "".
	SecureAddr string
	cmd        *exec.Cmd
	http       string
	bin        string
	done       chan struct{}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a server with its data in dir. It needs Debian's
// clickhouse-server installed (scripts/clickhouse.sh install).
func Start(ctx context.Context, dir string) (*Server, error) { return StartWith(ctx, dir, Extra{}) }

// StartWith is Start with extra users and TLS (extra.go).
func StartWith(ctx context.Context, dir string, extra Extra) (*Server, error) {
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		return nil, errors.New("chserver: clickhouse-server is not installed (run scripts/clickhouse.sh install, or pass the address of a running server)")
	}
	template, err := os.ReadFile("/etc/clickhouse-server/config.xml")
	if err != nil {
		return nil, fmt.Errorf("chserver: reading the packaged config: %w", err)
	}
	users, err := os.ReadFile("/etc/clickhouse-server/users.xml")
	if err != nil {
		return nil, fmt.Errorf("chserver: reading the packaged users.xml: %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, err
		}
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	cfg := string(template)
	for tag, value := range map[string]string{
		"path": dir + "/data/", "tmp_path": dir + "/tmp/", "user_files_path": dir + "/user_files/",
		"format_schema_path": dir + "/format_schemas/", "log": dir + "/log/clickhouse-server.log",
		"errorlog": dir + "/log/clickhouse-server.err.log", "tcp_port": fmt.Sprint(ports[0]),
		"http_port": fmt.Sprint(ports[1]), "interserver_http_port": fmt.Sprint(ports[2]),
		"users_config": dir + "/users.xml",
	} {
		cfg = regexp.MustCompile(`<`+tag+`>[^<]*</`+tag+`>`).ReplaceAllLiteralString(cfg, "<"+tag+">"+value+"</"+tag+">")
	}
	cfg = regexp.MustCompile(`.*<listen_host>.*\n`).ReplaceAllString(cfg, "")
	cfg = strings.Replace(cfg, "<level>trace</level>", "<level>warning</level>", 1)
	cfg = strings.Replace(cfg, "</yandex>", "    <listen_host>127.0.0.1</listen_host>\n</yandex>", 1)
	usersXML := string(users)
	if cfg, usersXML, err = extra.apply(cfg, usersXML, ports[3]); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(cfg), 0o640); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o640); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), SecureAddr: extra.secureAddr(ports[3]), http: fmt.Sprintf("http://127.0.0.1:%d/ping", ports[1]), bin: bin}
	return s, s.launch(ctx)
}

// Restart starts a stopped server again, with its data and ports.
func (s *Server) Restart(ctx context.Context) error { return s.launch(ctx) }

func (s *Server) launch(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer log.Close()
	s.done = make(chan struct{})
	s.cmd = exec.Command(s.bin, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	s.cmd.Dir, s.cmd.Stdout, s.cmd.Stderr = s.Dir, log, log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := s.done
	go func() { s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.http); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("chserver: clickhouse-server exited during start-up; see %s/log", s.Dir)
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	s.Stop()
	return fmt.Errorf("chserver: clickhouse-server did not answer within 60 s; see %s/log", s.Dir)
}

// Stop stops the server (SIGTERM, then SIGKILL after 30 s).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Signal sends sig to the running server: tests SIGSTOP it to make a
// server that accepts connections and never answers, and SIGCONT it.
func (s *Server) Signal(sig os.Signal) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("chserver: not running")
	}
	return s.cmd.Process.Signal(sig)
}
