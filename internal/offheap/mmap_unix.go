//go:build unix

package offheap

import (
	"errors"
	"syscall"
)

func mmap(bytes int) ([]byte, error) {
	return syscall.Mmap(-1, 0, bytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// munmap unmaps b. The syscall package keeps its mappings by their last
// byte and refuses anything else with EINVAL: a heap array (Make's
// fallback), left to the garbage collector (isMapping false). Any other
// failure leaves the mapping, and its bytes counted.
func munmap(b []byte) (isMapping bool, err error) {
	err = syscall.Munmap(b)
	if errors.Is(err, syscall.EINVAL) {
		return false, nil
	}
	return true, err
}
