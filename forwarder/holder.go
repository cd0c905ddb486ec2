package forwarder

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
	"github.com/google/uuid"
)

// holderKey keeps the forwarder's id for the schema upgrade lock in the
// state store: it must survive restarts, so that an upgrade this forwarder
// began and did not finish is resumed by it rather than waited for.
var holderKey = []byte("forwarder/upgrade-holder")

// loadHolderID returns the forwarder's upgrade-lock id, creating it on first
// use.
func loadHolderID(db *pebble.DB) (string, error) {
	v, closer, err := db.Get(holderKey)
	if err == nil {
		id := string(v)
		closer.Close()
		if holderPattern.MatchString(id) {
			return id, nil
		}
		return "", fmt.Errorf("forwarder: malformed upgrade holder id %q in the state store", id)
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return "", fmt.Errorf("forwarder: reading the upgrade holder id: %w", err)
	}
	id := "forwarder-" + uuid.NewString()
	if err := db.Set(holderKey, []byte(id), pebble.Sync); err != nil {
		return "", fmt.Errorf("forwarder: storing the upgrade holder id: %w", err)
	}
	return id, nil
}
