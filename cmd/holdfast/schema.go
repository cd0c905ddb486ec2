package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/holdfast/holdfast/forwarder"
)

func runSchema(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("database", "holdfast", "ClickHouse database name")
	cluster := fs.String("cluster", "", "print the schema for this ClickHouse cluster (<remote_servers> name): replicated tables behind Distributed ones, ON CLUSTER")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := forwarder.ValidateDatabase(*db); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	stmts := forwarder.SchemaDDL(*db)
	if *cluster != "" {
		var err error
		if stmts, err = forwarder.ClusterSchemaDDL(*db, *cluster); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintf(stdout, "-- holdfast ClickHouse schema, version %d, on cluster %s\n", forwarder.SchemaVersion, *cluster)
	} else {
		fmt.Fprintf(stdout, "-- holdfast ClickHouse schema, version %d\n", forwarder.SchemaVersion)
	}
	for _, q := range stmts {
		fmt.Fprintf(stdout, "%s;\n\n", q)
	}
	return 0
}
