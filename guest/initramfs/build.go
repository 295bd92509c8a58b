package initramfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Base returns the archive every novm guest boots from: the agent as /init,
// the mount points it uses, and /dev/console.
func Base(agent []byte) (*Archive, error) {
	a := New()
	for _, d := range []string{"dev", "proc", "sys", "run", "mnt"} {
		if err := a.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := a.AddDir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := a.AddCharDev("dev/console", 0o600, 5, 1); err != nil {
		return nil, err
	}
	if err := a.AddFile("init", 0o755, agent); err != nil {
		return nil, err
	}
	return a, nil
}

// AddTree copies the host directory dir into the archive root: regular
// files, directories and symlinks, with their permission bits. Other file
// types are an error rather than silently left out.
func (a *Archive) AddTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode().IsDir():
			return a.AddDir(rel, info.Mode())
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return a.AddSymlink(rel, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return a.AddFile(rel, info.Mode(), data)
		}
		return fmt.Errorf("initramfs: %s: unsupported file type %v", path, info.Mode().Type())
	})
}
