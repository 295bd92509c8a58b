package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// containerdSpec is close to what containerd generates for `ctr run`.
func containerdSpec(t *testing.T) *specs.Spec {
	limit, quota, period := int64(512<<20), int64(150000), uint64(100000)
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("nameserver 1.1.1.1\n"), 0o644)
	return &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "box",
		Process: &specs.Process{
			Args: []string{"sh", "-c", "echo hi"}, Env: []string{"PATH=/bin"}, Cwd: "/work",
			User:         specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10}},
			Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}},
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "rw"}},
			{Destination: "/etc/resolv.conf", Source: conf, Options: []string{"rbind", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro"}},
		},
		Linux: &specs.Linux{
			Resources:  &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}, CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
			Seccomp:    &specs.LinuxSeccomp{DefaultAction: specs.ActErrno},
		},
	}
}

func writeBundle(t *testing.T, spec any) string {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	b, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	return dir
}

func TestPlanFromContainerdSpec(t *testing.T) {
	spec := containerdSpec(t)
	dir := writeBundle(t, spec)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckRootfs(); err != nil {
		t.Fatal(err)
	}
	p, err := b.Plan(Defaults{MaxCPUs: 8})
	if err != nil {
		t.Fatal(err)
	}
	if p.CPUs != 2 || p.MemoryMiB != 512+GuestOverheadMiB {
		t.Errorf("sized %d CPUs, %d MiB; want 2 (1.5 CPUs rounded up), %d", p.CPUs, p.MemoryMiB, 512+GuestOverheadMiB)
	}
	if len(p.Shares) != 3 || p.Shares[0].Name != RootfsShare || p.Shares[0].Path != filepath.Join(dir, "rootfs") {
		t.Fatalf("shares %+v", p.Shares)
	}
	if p.Shares[2].Path != spec.Mounts[3].Source || !p.Shares[2].ReadOnly || p.Shares[1].ReadOnly {
		t.Errorf("bind shares %+v", p.Shares[1:])
	}
	if len(p.ShareMounts) != 2 || p.ShareMounts[1].Target != "/etc/resolv.conf" || !p.ShareMounts[1].Readonly {
		t.Errorf("share mounts %+v", p.ShareMounts)
	}
	if len(p.GuestMounts) != 3 || p.GuestMounts[1].Target != "/dev" || p.GuestMounts[2].Type != "cgroup" {
		t.Errorf("guest mounts %+v", p.GuestMounts)
	}
	pr := p.Process
	if pr.Rootfs != RootfsShare || pr.Cwd != "/work" || pr.User.Uid != 1000 || pr.User.AdditionalGids[0] != 10 ||
		len(pr.Rlimits) != 1 || pr.Rlimits[0].Hard != 4096 || p.Hostname != "box" {
		t.Errorf("process %+v", pr)
	}
	warnings := strings.Join(p.Warnings, "\n")
	for _, w := range []string{"seccomp", "capabilities"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("no warning about %s in %q", w, warnings)
		}
	}
}

func TestSizing(t *testing.T) {
	for _, c := range []struct {
		name      string
		res       *specs.LinuxResources
		cpus, mib int
	}{
		{"no limits", nil, DefaultCPUs, DefaultMemoryMiB},
		{"tiny memory limit gets the floor", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4 << 20))}}, DefaultCPUs, MinMemoryMiB},
		{"unlimited memory", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))}}, DefaultCPUs, DefaultMemoryMiB},
		{"cpuset", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-2,5"}}, 4, DefaultMemoryMiB},
		{"quota above the host", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(1600000)), Period: ptr(uint64(100000))}}, 8, DefaultMemoryMiB},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := containerdSpec(t)
			spec.Linux.Resources = c.res
			b, err := Load(writeBundle(t, spec))
			if err != nil {
				t.Fatal(err)
			}
			p, err := b.Plan(Defaults{MaxCPUs: 8})
			if err != nil {
				t.Fatal(err)
			}
			if p.CPUs != c.cpus || p.MemoryMiB != c.mib {
				t.Fatalf("%d CPUs %d MiB, want %d %d", p.CPUs, p.MemoryMiB, c.cpus, c.mib)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestBadBundles(t *testing.T) {
	empty := t.TempDir()
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "config.json"), []byte("{not json"), 0o644)
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), "no config.json") {
		t.Errorf("missing config.json: %v", err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "not a valid runtime spec") {
		t.Errorf("bad JSON: %v", err)
	}
	for _, c := range []struct {
		name  string
		edit  func(*specs.Spec)
		error string
	}{
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "nothing to run"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "work" }, "process.cwd"},
		{"no root", func(s *specs.Spec) { s.Root = nil }, "root.path"},
		{"user namespace", func(s *specs.Spec) { s.Linux.UIDMappings = []specs.LinuxIDMapping{{Size: 1}} }, "user namespaces"},
	} {
		spec := containerdSpec(t)
		c.edit(spec)
		if _, err := Load(writeBundle(t, spec)); err == nil || !strings.Contains(err.Error(), c.error) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, c := range []struct {
		name  string
		edit  func(*specs.Spec)
		error string
	}{
		{"missing bind source", func(s *specs.Spec) { s.Mounts[2].Source = "/nonexistent" }, "bind source /nonexistent"},
		{"device bind", func(s *specs.Spec) { s.Mounts[2].Source = "/dev/null" }, "not a directory or regular file"},
		{"overlay mount", func(s *specs.Spec) { s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "overlay"}) }, `mount type "overlay"`},
	} {
		spec := containerdSpec(t)
		c.edit(spec)
		b, err := Load(writeBundle(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Plan(Defaults{}); err == nil || !strings.Contains(err.Error(), c.error) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	spec := containerdSpec(t)
	dir := writeBundle(t, spec)
	os.Remove(filepath.Join(dir, "rootfs"))
	b, _ := Load(dir)
	if err := b.CheckRootfs(); err == nil || !strings.Contains(err.Error(), "root filesystem") {
		t.Errorf("missing rootfs: %v", err)
	}
}
