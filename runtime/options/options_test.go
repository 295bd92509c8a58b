package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
)

func TestLoadLayers(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "novm.toml")
	os.WriteFile(base, []byte("kernel = \"/k\"\ncpus = 2\n"), 0o644)
	t.Setenv("NOVM_CONFIG", base)
	over := filepath.Join(dir, "over.toml")
	os.WriteFile(over, []byte("memory_mib = 512\n"), 0o644)

	c, err := Load(&runtimeoptions.Options{ConfigPath: over, ConfigBody: []byte("kernel_args = \"loglevel=7\"\ndebug_console = true\n")})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Kernel: "/k", Initrd: Default().Initrd, CPUs: 2, MemoryMiB: 512, KernelArgs: "loglevel=7", DebugConsole: true}
	if c != want {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Setenv("NOVM_CONFIG", filepath.Join(t.TempDir(), "missing.toml"))
	if _, err := Load(nil); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing explicit config file: %v", err)
	}
	t.Setenv("NOVM_CONFIG", "")
	_, err := Load(&runtimeoptions.Options{ConfigBody: []byte("kernal = \"/k\"\n")})
	if err == nil || !strings.Contains(err.Error(), "kernal") {
		t.Errorf("typo in key: %v", err)
	}
	if _, err := Load(&runtimeoptions.Options{ConfigBody: []byte("cpus = -1\n")}); err == nil {
		t.Error("negative cpus accepted")
	}
}
