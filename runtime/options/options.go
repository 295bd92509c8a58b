// Package options is the shim's VM configuration: built-in defaults, then
// novm's config file (/etc/novm/config.toml, or $NOVM_CONFIG), then the
// runtime options containerd passes per container: a file named by
// ConfigPath (`ctr run --runtime-config-path`) or the TOML body of the
// runtime's options table in containerd's config (the CRI plugin sends it
// as ConfigBody). Unknown keys are errors, so a typo is not silently
// ignored.
package options

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/pelletier/go-toml/v2"
)

// ConfigFile is novm's own config file; $NOVM_CONFIG overrides its path.
const ConfigFile = "/etc/novm/config.toml"

// Config is what a container's VM is made of. Zero numbers mean "size
// from the spec" (see package bundle).
type Config struct {
	// Kernel is the guest kernel (vmlinux ELF or bzImage).
	Kernel string `toml:"kernel"`
	// Initrd is the initramfs holding the agent.
	Initrd string `toml:"initrd"`
	// CPUs and MemoryMiB, if set, are the VM size when the spec sets no
	// limits.
	CPUs      int `toml:"cpus"`
	MemoryMiB int `toml:"memory_mib"`
	// KernelArgs are appended to the kernel command line.
	KernelArgs string `toml:"kernel_args"`
	// DebugConsole logs the guest's console output at debug level (the
	// shim's -debug flag, set by containerd's debug log level, does too).
	DebugConsole bool `toml:"debug_console"`
}

// Default is the built-in configuration.
func Default() Config {
	return Config{Kernel: DefaultAsset("vmlinux"), Initrd: DefaultAsset("initramfs.cpio")}
}

// DefaultAsset finds a file installed with novm: beside the running
// binary (a `make` build tree), in ../share/novm from it, then in
// /usr/local/share/novm and /usr/share/novm. If none exists, the
// /usr/local path is returned, for the error message.
func DefaultAsset(name string) string {
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

// Load builds the configuration for one container. opts is what
// containerd passed (nil, or *runtimeoptions.Options).
func Load(opts *runtimeoptions.Options) (Config, error) {
	c := Default()
	path := os.Getenv("NOVM_CONFIG")
	if path == "" {
		path = ConfigFile
	}
	if err := c.mergeFile(path, path != ConfigFile); err != nil {
		return c, err
	}
	if opts == nil {
		return c, nil
	}
	if opts.ConfigPath != "" {
		if err := c.mergeFile(opts.ConfigPath, true); err != nil {
			return c, err
		}
	}
	if len(opts.ConfigBody) > 0 {
		if err := c.merge(opts.ConfigBody); err != nil {
			return c, fmt.Errorf("runtime options in containerd's config: %w", err)
		}
	}
	return c, nil
}

// mergeFile overlays a TOML file; a missing file is an error only if
// required.
func (c *Config) mergeFile(path string, required bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("novm config: %w", err)
	}
	if err := c.merge(b); err != nil {
		return fmt.Errorf("novm config %s: %w", path, err)
	}
	return nil
}

// merge overlays the keys present in a TOML document.
func (c *Config) merge(b []byte) error {
	d := toml.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(c); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return fmt.Errorf("unknown key (known: kernel, initrd, cpus, memory_mib, kernel_args, debug_console):\n%s", sm.String())
		}
		return err
	}
	if c.CPUs < 0 || c.MemoryMiB < 0 {
		return errors.New("cpus and memory_mib must not be negative")
	}
	return nil
}
