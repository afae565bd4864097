package issuertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WriteSecretVolume writes files into dir as kubelet writes a Secret (or
// projected) volume, so code that reads mounted credentials can be tested
// across an update: the files go into a new `..<timestamp>` directory, the
// `..data` symlink is swapped to it by a rename (atomically), each visible
// name is a symlink through `..data`, and the previous timestamped
// directory is removed. Call it again with the new content for an update.
// Names that are no longer given keep dangling links, as with kubelet when
// a key leaves the Secret. tb may be nil outside a test; errors then panic.
func WriteSecretVolume(tb testing.TB, dir string, files map[string]string) {
	if tb != nil {
		tb.Helper()
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		fatalf(tb, "issuertest: writing the volume: %v", err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644); err != nil {
			fatalf(tb, "issuertest: writing the volume: %v", err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		fatalf(tb, "issuertest: writing the volume: %v", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		fatalf(tb, "issuertest: writing the volume: %v", err)
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				fatalf(tb, "issuertest: writing the volume: %v", err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			fatalf(tb, "issuertest: writing the volume: %v", err)
		}
	}
}
