package main

import (
	"errors"
	"os"
	"path/filepath"
)

var errUsage = errors.New("usage")

// Where the default guest kernel and initramfs are looked for, in order:
// beside the novm binary (a `make` build tree), then the install prefix.
func defaultAsset(name string) string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		dirs = append(dirs, dir, filepath.Join(dir, "..", "share", "novm"))
	}
	dirs = append(dirs, "/usr/local/share/novm", "/usr/share/novm")
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("/usr/local/share/novm", name)
}

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
