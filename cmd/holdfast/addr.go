package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Every flag and config key that takes an address is one of two kinds, and
// checkAddress is the one check of both, run when the flag is parsed: an
// address of the wrong shape stops the daemon at start-up with the form it
// should have had, instead of a loop that retries a URL that can never work.
type addrKind int

const (
	// addrURL is an HTTP endpoint: http(s)://host[:port][/path]
	// (--registry, --producer, --advertise).
	addrURL addrKind = iota
	// addrHostPort is a TCP address without a scheme: host:port (--listen,
	// and --clickhouse, whose native protocol is not HTTP).
	addrHostPort
	// addrClickHouse is addrHostPort for ClickHouse, whose correction knows
	// its ports.
	addrClickHouse
)

// errBadAddress is wrapped by every address error.
var errBadAddress = errors.New("not a valid address")

// checkAddress returns nil for a well-formed address of kind k, else an
// error wrapping errBadAddress that says the corrected form when there is
// one. The message does not repeat the value: the flag package and the
// config file quote it whole with the flag or key name.
func checkAddress(k addrKind, s string) error {
	if strings.TrimSpace(s) != s || s == "" {
		return fmt.Errorf("%w: empty or with spaces", errBadAddress)
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	switch k {
	case addrURL:
		if !hasScheme {
			return fmt.Errorf("%w: a URL needs its scheme; use http://%s", errBadAddress, s)
		}
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%w: %v", errBadAddress, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("%w: the scheme must be http or https; use http://%s", errBadAddress, rest)
		}
		if u.Host == "" || u.Hostname() == "" {
			return fmt.Errorf("%w: no host (example: http://127.0.0.1:9400)", errBadAddress)
		}
		if p := u.Port(); p != "" {
			if err := checkPort(p); err != nil {
				return err
			}
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("%w: no user, query or fragment; use %s://%s", errBadAddress, u.Scheme, u.Host)
		}
		return nil
	default:
		if hasScheme {
			why := "takes host:port without a scheme"
			if k == addrClickHouse {
				why = "takes host:port of ClickHouse's native protocol (holdfast does not speak its HTTP interface), without a scheme"
			}
			return fmt.Errorf("%w: %s; use %s", errBadAddress, why, hostPortFix(k, scheme, rest))
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Errorf("%w: takes host:port; use %s", errBadAddress, hostPortFix(k, "", s))
		}
		if strings.Contains(host, "/") {
			return fmt.Errorf("%w: takes host:port, not a path", errBadAddress)
		}
		return checkPort(port)
	}
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%w: port %q is not a number from 0 to 65535", errBadAddress, p)
	}
	return nil
}

// hostPortFix is the host:port a scheme-ful or port-less address meant.
// For ClickHouse an HTTP port becomes the native one (8123 → 9000,
// 8443 → 9440): holdfast speaks the native protocol.
func hostPortFix(k addrKind, scheme, rest string) string {
	hostport, _, _ := strings.Cut(rest, "/")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), ""
	}
	if k == addrClickHouse {
		switch {
		case port == "8123" || (port == "" && scheme != "https"):
			port = "9000"
		case port == "8443" || port == "":
			port = "9440"
		}
	}
	if port == "" {
		port = "PORT"
	}
	return net.JoinHostPort(host, port)
}

// urlValue is a flag taking one addrURL.
type urlValue string

func (v *urlValue) String() string { return string(*v) }
func (v *urlValue) Set(s string) error {
	if s == "" {
		*v = "" // none: every URL flag is optional
		return nil
	}
	if err := checkAddress(addrURL, s); err != nil {
		return err
	}
	*v = urlValue(s)
	return nil
}

// urlFlag defines a urlValue flag; "" (the default) means none.
func urlFlag(fs *flag.FlagSet, name, usage string) *string {
	v := new(urlValue)
	fs.Var(v, name, usage)
	return (*string)(v)
}

// hostPortValue is a flag taking one addrHostPort.
type hostPortValue string

func (v *hostPortValue) String() string { return string(*v) }
func (v *hostPortValue) Set(s string) error {
	if err := checkAddress(addrHostPort, s); err != nil {
		return err
	}
	*v = hostPortValue(s)
	return nil
}

func hostPortFlag(fs *flag.FlagSet, name, def, usage string) *string {
	v := hostPortValue(def)
	fs.Var(&v, name, usage)
	return (*string)(&v)
}

// clickHouseValue is a flag taking one or more ClickHouse host:port
// addresses separated by commas.
type clickHouseValue string

func (v *clickHouseValue) String() string { return string(*v) }
func (v *clickHouseValue) Set(s string) error {
	for a := range strings.SplitSeq(s, ",") {
		if err := checkAddress(addrClickHouse, strings.TrimSpace(a)); err != nil {
			return err
		}
	}
	*v = clickHouseValue(s)
	return nil
}

func clickHouseFlag(fs *flag.FlagSet, name, def, usage string) *string {
	v := clickHouseValue(def)
	fs.Var(&v, name, usage)
	return (*string)(&v)
}

// urlList is a repeatable urlValue flag.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }
func (l *urlList) Set(s string) error {
	if err := checkAddress(addrURL, s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}

func (l *urlList) items() []string { return *l }
func (l *urlList) reset()          { *l = nil }
