package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/novm/novm/runtime/options"
)

var errUsage = errors.New("usage")

// defaultAsset finds the default guest kernel or initramfs.
func defaultAsset(name string) string { return options.DefaultAsset(name) }

// cacheDir holds unpacked bzImages and other derived files.
func cacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "novm")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "novm")
	}
	return filepath.Join(os.TempDir(), "novm-cache")
}
