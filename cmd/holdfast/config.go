package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A daemon's configuration file is its flags written as YAML: one key per
// flag, named after it with "-" and "." replaced by "_" (--wal-budget is
// wal_budget, --log.level is log_level), a repeatable flag taking a list.
// Deriving the keys from the FlagSet makes one mechanism serve the
// collector, the registry and the producer, keeps the file and the flags
// from ever disagreeing on a name or a parser (a size or an address is
// checked by the same flag.Value either way), and makes the file strict
// for free: a key that names no flag is an error. JSON files keep working,
// JSON being YAML.

// daemonConfig says how one daemon's flags map to file keys.
type daemonConfig struct {
	// name is the daemon, for messages ("holdfast collector").
	name string
	// aliases are file keys that differ from the derived name, by flag:
	// the collector's repeatable --producer is "producers" in a file.
	aliases map[string]string
	// refused are keys that are errors with a message of their own (a plain
	// password).
	refused map[string]string
}

// Flags that are about the command line itself, never keys.
var notKeys = []string{"config", "print-config"}

// isSecret says whether a flag's value is printed as <redacted>.
func isSecret(name string) bool { return strings.HasSuffix(name, "token") }

// key is the file key of a flag.
func (d daemonConfig) key(flagName string) string {
	if k, ok := d.aliases[flagName]; ok {
		return k
	}
	return flagKey.Replace(flagName)
}

// flagKey turns a flag name into its config file key: - and . become _.
var flagKey = strings.NewReplacer("-", "_", ".", "_")

// repeatable says whether a flag takes a list in a file.
func repeatable(f *flag.Flag) bool {
	_, ok := f.Value.(listValue)
	return ok
}

// ConfigError is a configuration file's error at a line and column.
type ConfigError struct {
	Path         string
	Line, Column int
	Key          string // empty when the error is not about one key
	Err          error
}

func (e *ConfigError) Error() string {
	where := e.Path
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.Path, e.Line, e.Column)
	}
	if e.Key != "" {
		return fmt.Sprintf("config %s: %s: %v", where, e.Key, e.Err)
	}
	return fmt.Sprintf("config %s: %v", where, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// errBadValue is wrapped by errors about a key's value.
var errBadValue = errors.New("invalid value")

// applyConfigFile reads the YAML (or JSON) file at path and sets every flag
// of fs it names, except those given on the command line (set): flags win
// over the file. Nothing is applied unless the whole file is valid.
func (d daemonConfig) applyConfigFile(path string, set map[string]bool, fs *flag.FlagSet) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return d.applyConfig(path, b, set, fs)
}

// applyConfig is applyConfigFile on the file's bytes.
func (d daemonConfig) applyConfig(path string, b []byte, set map[string]bool, fs *flag.FlagSet) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file (or only comments): every default
		}
		return &ConfigError{Path: path, Err: err} // yaml's message carries "line N"
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return &ConfigError{Path: path, Line: extra.Line, Column: extra.Column, Err: errors.New("more than one YAML document")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return &ConfigError{Path: path, Line: root.Line, Column: root.Column, Err: errors.New("expected a mapping of keys to values")}
	}
	byKey := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(notKeys, f.Name) {
			byKey[d.key(f.Name)] = f
		}
	})
	// Check everything on a copy first: a file with one bad key changes
	// nothing (a reload relies on it too).
	type assignment struct {
		f      *flag.Flag
		values []string
	}
	var todo []assignment
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		cerr := func(err error) error {
			return &ConfigError{Path: path, Line: k.Line, Column: k.Column, Key: k.Value, Err: err}
		}
		if k.Kind != yaml.ScalarNode {
			return &ConfigError{Path: path, Line: k.Line, Column: k.Column, Err: errors.New("a key must be a plain name")}
		}
		if seen[k.Value] {
			return cerr(errors.New("given twice"))
		}
		seen[k.Value] = true
		if msg, ok := d.refused[k.Value]; ok {
			return cerr(errors.New(msg))
		}
		f, ok := byKey[k.Value]
		if !ok {
			return cerr(d.unknownKey(k.Value, byKey))
		}
		var values []*yaml.Node
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			continue // "key:" with nothing: the default
		case v.Kind == yaml.ScalarNode:
			values = []*yaml.Node{v}
		case v.Kind == yaml.SequenceNode && repeatable(f):
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return &ConfigError{Path: path, Line: item.Line, Column: item.Column, Key: k.Value, Err: errors.New("a list item must be a plain value")}
				}
				values = append(values, item)
			}
		case v.Kind == yaml.SequenceNode:
			return &ConfigError{Path: path, Line: v.Line, Column: v.Column, Key: k.Value, Err: errors.New("takes one value, not a list")}
		default:
			return &ConfigError{Path: path, Line: v.Line, Column: v.Column, Key: k.Value, Err: errors.New("takes a plain value, not a mapping")}
		}
		if set[f.Name] {
			continue // the command line wins
		}
		// Check each value on a fresh value of the flag's type, so that a
		// bad one leaves fs untouched, and say where it is.
		a := assignment{f: f}
		for _, n := range values {
			if err := checkValue(f, []string{n.Value}); err != nil {
				return &ConfigError{Path: path, Line: n.Line, Column: n.Column, Key: k.Value, Err: err}
			}
			a.values = append(a.values, n.Value)
		}
		todo = append(todo, a)
	}
	for _, a := range todo {
		if repeatable(a.f) {
			a.f.Value.(listValue).reset() // the file's list replaces the default
		}
		for _, v := range a.values {
			if err := a.f.Value.Set(v); err != nil {
				return &ConfigError{Path: path, Key: d.key(a.f.Name), Err: err}
			}
		}
	}
	return nil
}

// checkValue sets values on a scratch flag of f's type when it has one
// (every flag.Value of this package and the standard ones do), so a value
// is refused before anything is applied.
func checkValue(f *flag.Flag, values []string) (err error) {
	v := cloneValue(f.Value)
	if v == nil {
		return nil // checked when applied
	}
	defer func() {
		if recover() != nil {
			err = nil // a Value whose zero form cannot Set: checked when applied
		}
	}()
	for _, s := range values {
		if err := v.Set(s); err != nil {
			return fmt.Errorf("%w %q: %w", errBadValue, s, explainParseError(f.Value, err))
		}
	}
	return nil
}

// explainParseError replaces the standard flag types' bare "parse error"
// with what the value should look like.
func explainParseError(v flag.Value, err error) error {
	if err.Error() != "parse error" && err.Error() != "value out of range" {
		return err
	}
	want := map[string]string{
		"*flag.intValue": "an integer", "*flag.int64Value": "an integer", "*flag.uintValue": "a non-negative integer",
		"*flag.uint64Value": "a non-negative integer", "*flag.float64Value": "a number",
		"*flag.durationValue": "a duration (examples: 500ms, 10s, 5m, 1h30m)", "*flag.boolValue": "true or false",
	}[fmt.Sprintf("%T", v)]
	if want == "" {
		return err
	}
	return fmt.Errorf("%w: want %s", err, want)
}

// cloneValue returns a zero value of v's type (every flag.Value of the
// standard library and of this package is a pointer to a plain type), or
// nil.
func cloneValue(v flag.Value) flag.Value {
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer {
		return nil
	}
	c, ok := reflect.New(t.Elem()).Interface().(flag.Value)
	if !ok {
		return nil
	}
	return c
}

// printConfig writes the effective configuration of fs as YAML, in the
// file's key names, secrets as <redacted>.
func (d daemonConfig) printConfig(w io.Writer, fs *flag.FlagSet) error {
	m := &yaml.Node{Kind: yaml.MappingNode}
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(notKeys, f.Name) {
			return
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: d.key(f.Name)}
		var v *yaml.Node
		switch {
		case repeatable(f):
			v = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			if l := f.Value.(listValue).items(); len(l) > 0 {
				v.Style = 0
				for _, s := range l {
					v.Content = append(v.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s})
				}
			}
		case isSecret(f.Name) && f.Value.String() != "":
			v = &yaml.Node{Kind: yaml.ScalarNode, Value: "<redacted>"}
		default:
			v = &yaml.Node{Kind: yaml.ScalarNode, Value: f.Value.String()}
			switch {
			case v.Value == "":
				v.Tag, v.Style = "!!str", yaml.DoubleQuotedStyle
			case checkValue(f, []string{v.Value}) != nil:
				// A value whose printed form does not read back
				// (sample_limits' unset zeros) is the default: an
				// empty key, so that the output loads as a config.
				v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "", LineComment: "default"}
			}
		}
		m.Content = append(m.Content, k, v)
	})
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	fmt.Fprintf(w, "# effective configuration of %s (flags over --config file over defaults)\n", d.name)
	if err := enc.Encode(m); err != nil {
		return err
	}
	return enc.Close()
}

// unknownKey explains a key that names no flag, suggesting the right
// spelling when only the separators differ (data-dir for data_dir).
func (d daemonConfig) unknownKey(k string, byKey map[string]*flag.Flag) error {
	norm := flagKey.Replace(k)
	if _, ok := byKey[norm]; ok && norm != k {
		return fmt.Errorf("unknown key; did you mean %s?", norm)
	}
	for flagName, alias := range d.aliases {
		if k == flagKey.Replace(flagName) {
			return fmt.Errorf("unknown key; did you mean %s?", alias)
		}
	}
	return fmt.Errorf("unknown key (the keys are the flags of %s --help with _ for - and .)", d.name)
}

// configFlags are --config and --print-config, on every daemon.
type configFlags struct {
	file  *string
	print *bool
}

func addConfigFlags(fs *flag.FlagSet) configFlags {
	return configFlags{
		file:  fs.String("config", "", "YAML (or JSON) file of settings: its keys are these flags' names with _ for - and . (wal_budget, log_level), a repeatable flag takes a list; unknown keys are errors; flags given on the command line win over it"),
		print: fs.Bool("print-config", false, "print the effective configuration (command line over --config file over defaults) as YAML, tokens shown as <redacted>, and exit"),
	}
}

// configPath is the --config flag's value in fs.
func configPath(fs *flag.FlagSet) string {
	if f := fs.Lookup("config"); f != nil {
		return f.Value.String()
	}
	return ""
}

// errHelp is parse's answer to -h/--help, which it printed: exit 0.
var errHelp = errors.New("help shown")

// parse parses args into fs, then the --config file into every flag the
// command line did not set. It returns the flags the command line set.
// A bad flag is one line naming it, not the whole list of flags.
func (d daemonConfig) parse(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	out := fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		d.usage(fs)
		return nil, errHelp
	}
	if err != nil {
		msg := strings.Replace(err.Error(), " for flag -", " for flag --", 1)
		msg = strings.Replace(msg, "flag provided but not defined: -", "unknown flag --", 1)
		return nil, fmt.Errorf("%s (%s --help lists the flags)", msg, d.name)
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if path := configPath(fs); path != "" {
		if err := d.applyConfigFile(path, set, fs); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// usage is --help: the flags, then what the config file and sizes are.
func (d daemonConfig) usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: %s [flags]\n\nFlags:\n", d.name)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nConfiguration file (--config FILE, YAML or JSON): one key per flag, named as the flag with _ for - and . (--wal-budget is wal_budget, --log.level is log_level)")
	for flagName, key := range d.aliases {
		fmt.Fprintf(w, "; --%s (repeatable) is %s, a list", flagName, key)
	}
	fmt.Fprintf(w, ". Unknown keys are errors. Flags on the command line win over the file. --print-config shows the result.\n")
	hasSize := false
	fs.VisitAll(func(f *flag.Flag) { _, ok := f.Value.(*byteSize); hasSize = hasSize || ok })
	if hasSize {
		fmt.Fprintf(w, "\nSizes: %s.\n", sizeHelp)
	}
}

// reportParseError prints a start-up error of parse and returns the exit
// status: 2, bad usage (0 after --help).
func reportParseError(daemon string, err error, stderr io.Writer) int {
	if errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", daemon, err)
	return 2
}

// placeDataDir places a relative data directory. Under systemd
// (StateDirectory= sets $STATE_DIRECTORY) it is inside the state
// directory, so the default lands in /var/lib/holdfast/..., never in the
// service's working directory, which is /. Elsewhere a relative directory
// is refused when the working directory is / (a service manager without
// StateDirectory, or cron): data written to /holdfast-data is a surprise
// nobody backs up.
func placeDataDir(dir string) (string, error) {
	if dir == "" || filepath.IsAbs(dir) {
		return dir, nil
	}
	if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
		first, _, _ := strings.Cut(sd, ":") // several directories: the first
		return filepath.Join(first, dir), nil
	}
	if wd, err := os.Getwd(); err == nil && wd == "/" {
		return "", fmt.Errorf("--data-dir %q is relative and the working directory is /: give an absolute --data-dir (data_dir in a config file), or run under systemd with StateDirectory=", dir)
	}
	return dir, nil
}
