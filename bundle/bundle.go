// Package bundle reads an OCI bundle (config.json and the rootfs beside
// it) and maps its runtime spec onto a novm microVM: the root filesystem
// and bind mounts become virtio-fs shares, pseudo filesystems are mounted
// by the agent inside the guest, the process becomes an agent request and
// the resource limits size the VM. Every spec field novm cannot honour
// either fails Load with a clear error or yields a warning, decided per
// field in plan.go.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Bundle is a loaded OCI bundle.
type Bundle struct {
	// Dir is the bundle directory.
	Dir  string
	Spec *specs.Spec
}

// Load reads and checks dir/config.json. Errors name the bundle and the
// field at fault.
func Load(dir string) (*Bundle, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle %s: no config.json", dir)
		}
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("bundle %s: config.json is not a valid runtime spec: %w", dir, err)
	}
	b := &Bundle{Dir: dir, Spec: &spec}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	return b, nil
}

// RootfsPath is the host path of the root filesystem.
func (b *Bundle) RootfsPath() string {
	p := b.Spec.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(b.Dir, p)
	}
	return p
}

func (b *Bundle) check() error {
	s := b.Spec
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("config.json has no root.path")
	}
	if s.Process == nil {
		return errors.New("config.json has no process")
	}
	if len(s.Process.Args) == 0 {
		return errors.New("process.args is empty: nothing to run")
	}
	if s.Process.Cwd == "" || !filepath.IsAbs(s.Process.Cwd) {
		return fmt.Errorf("process.cwd %q is not an absolute path", s.Process.Cwd)
	}
	if s.Linux != nil && (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0) {
		return errors.New("linux.uidMappings/gidMappings: user namespaces are not supported (the VM is the boundary; run the container as root in it)")
	}
	for i, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mounts[%d].destination %q is not an absolute path", i, m.Destination)
		}
	}
	return nil
}

// CheckRootfs reports a missing or unusable root filesystem. It is apart
// from Load because containerd mounts the rootfs only after it reads the
// spec.
func (b *Bundle) CheckRootfs() error {
	st, err := os.Stat(b.RootfsPath())
	if err != nil {
		return fmt.Errorf("bundle %s: root filesystem: %w", b.Dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("bundle %s: root filesystem %s is not a directory", b.Dir, b.RootfsPath())
	}
	return nil
}
