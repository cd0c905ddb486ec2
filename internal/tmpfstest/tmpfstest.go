// Package tmpfstest mounts small tmpfs file systems for tests that need a
// real full disk (ENOSPC) or a file system that is cheap to fill and reset.
package tmpfstest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of the given size (e.g. "4m") on a fresh t.TempDir()
// and unmounts it when the test ends. Without root (or without mount) it
// skips, except under CI=true where it fails: these tests are the real
// proof and must not silently vanish there.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir, why := TryMount(t, size)
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot mount a small tmpfs (%s); CI must run this test as root", why)
		}
		t.Skipf("skipping: cannot mount a small tmpfs (%s); run as root", why)
	}
	return dir
}

// TryMount is Mount for tests that can do without a tmpfs (only slower):
// it returns a fresh t.TempDir(), with a tmpfs mounted on it (unmounted
// when the test ends) when it could, or why not.
func TryMount(t testing.TB, size string) (dir, whyNot string) {
	t.Helper()
	dir = t.TempDir()
	if os.Geteuid() != 0 {
		return dir, "not root"
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		return dir, fmt.Sprintf("mount -t tmpfs failed: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir, ""
}

// Fill writes a file at path until its file system is full, to the last
// 512 bytes it takes.
func Fill(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for n := len(buf); n >= 512; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}
