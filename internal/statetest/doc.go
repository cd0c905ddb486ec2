// Package statetest runs a Pebble state store on a file system that loses
// power: Pebble's strict in-memory FS, which forgets every write not synced.
// Tests of the stores built on Pebble (the forwarder's checkpoint, the
// registry, the collector's cached assignment) use it to check that what
// they answered was synced, which a SIGKILL cannot show (the page cache
// survives a killed process). The store is opened as production opens it
// (state.OpenFS).
//
// Usage:
//
//	pl := statetest.NewPowerLoss(t)
//	db := pl.Open()
//	... writes ...
//	pl.Cut(func() { db.Close() }) // drops what was not synced
//	db = pl.Open()
//
// Not safe for concurrent use: one test goroutine drives it.
package statetest
