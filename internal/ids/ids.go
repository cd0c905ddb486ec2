// Package ids validates the ids that name producers and collectors: in the
// registry (registrations, assignments, listings) and in a producer's page
// API (the collector named in the URL). Both sides check the same rule, so
// an id the registry accepts is one every producer serves.
//
// An id is 1 to 128 characters of [A-Za-z0-9._:@-]: enough for host names,
// host:port, user@host and UUIDs, with nothing that needs escaping in a URL
// path segment, a Pebble key or a log line.
//
// The forwarder's schema-upgrade holder id follows a different, stricter
// rule of its own (no '@'), kept in forwarder/migrate.go: it is written into
// ClickHouse DDL, not a name clients choose.
package ids

import "regexp"

// Rule describes valid ids, for error messages.
const Rule = "1-128 characters of [A-Za-z0-9._:@-]"

var pattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// Valid reports whether id is a valid producer or collector id (see Rule).
func Valid(id string) bool { return pattern.MatchString(id) }
