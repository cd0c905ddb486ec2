package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/holdfast/holdfast/forwarder"
)

// envPassword holds the ClickHouse password when no file is given. A
// password is never a flag: flags show in `ps` and shell history.
const envPassword = "HOLDFAST_CLICKHOUSE_PASSWORD"

// chClientFlags are how a command reaches ClickHouse beyond its address:
// user, password, TLS. --clickhouse itself takes a comma-separated list.
type chClientFlags struct {
	user, passwordFile        *string
	tls                       *bool
	caFile, certFile, keyFile *string
	serverName                *string
	compression               *string
}

func addCHClientFlags(fs *flag.FlagSet) *chClientFlags {
	return &chClientFlags{
		user:         fs.String("clickhouse-user", "default", "ClickHouse user"),
		passwordFile: fs.String("clickhouse-password-file", "", "file holding the ClickHouse password (trailing newline ignored); else $"+envPassword),
		tls:          fs.Bool("clickhouse-tls", false, "connect with TLS (the server's tcp_port_secure, usually 9440)"),
		caFile:       fs.String("clickhouse-ca-file", "", "PEM CA bundle to verify the server with (default: the system's)"),
		certFile:     fs.String("clickhouse-cert-file", "", "PEM client certificate, for servers that ask for one"),
		keyFile:      fs.String("clickhouse-key-file", "", "PEM key of --clickhouse-cert-file"),
		serverName:   fs.String("clickhouse-server-name", "", "name the server's certificate must carry (default: the host of the address)"),
		compression:  fs.String("clickhouse-compression", "lz4", "compression of the blocks on the wire: lz4, zstd (smaller, more CPU) or none (a ClickHouse on this host or a fast local network)"),
	}
}

// apply sets user, password, compression and TLS on o.
func (c *chClientFlags) apply(o *forwarder.Options) error {
	o.Username = *c.user
	compression, err := forwarder.ParseCompression(*c.compression)
	if err != nil {
		return fmt.Errorf("--clickhouse-compression: %w", err)
	}
	o.Compression = compression
	switch {
	case *c.passwordFile != "":
		b, err := os.ReadFile(*c.passwordFile)
		if err != nil {
			return fmt.Errorf("reading --clickhouse-password-file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	default:
		o.Password = os.Getenv(envPassword)
	}
	if !*c.tls {
		if *c.caFile != "" || *c.certFile != "" || *c.keyFile != "" || *c.serverName != "" {
			return errors.New("--clickhouse-ca-file, -cert-file, -key-file and -server-name need --clickhouse-tls")
		}
		return nil
	}
	cfg := &tls.Config{ServerName: *c.serverName, MinVersion: tls.VersionTLS12}
	if *c.caFile != "" {
		pem, err := os.ReadFile(*c.caFile)
		if err != nil {
			return fmt.Errorf("reading --clickhouse-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--clickhouse-ca-file %s holds no PEM certificate", *c.caFile)
		}
	}
	if (*c.certFile == "") != (*c.keyFile == "") {
		return errors.New("--clickhouse-cert-file and --clickhouse-key-file go together")
	}
	if *c.certFile != "" {
		pair, err := tls.LoadX509KeyPair(*c.certFile, *c.keyFile)
		if err != nil {
			return fmt.Errorf("loading the ClickHouse client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	o.TLS = cfg
	return nil
}
