package bundle

// This file decides, field by field, what a runtime spec becomes in a
// microVM. The VM is the isolation boundary: namespaces are implied,
// cgroup limits size the VM, and what only a host kernel could enforce
// inside a shared kernel (seccomp, LSM labels, device cgroups) is reported
// as a warning rather than silently dropped. Fields that would change what
// the process sees in a way novm cannot provide are errors.

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/vmm"
)

// RootfsShare is the share name of the bundle's root filesystem.
const RootfsShare = "rootfs"

// Sizing for VMs.
const (
	// DefaultCPUs and DefaultMemoryMiB size a VM whose spec sets no
	// limits.
	DefaultCPUs      = 1
	DefaultMemoryMiB = 256
	// GuestOverheadMiB is added to a memory limit: the guest kernel and
	// agent live in the same RAM as the container.
	GuestOverheadMiB = 64
	// MinMemoryMiB is the floor for a VM sized from a memory limit.
	MinMemoryMiB = 128
)

// Defaults override the built-in sizing (zero fields keep it).
type Defaults struct {
	CPUs, MemoryMiB int
	// MaxCPUs caps vCPUs from a CPU quota (the host's CPUs by default).
	MaxCPUs int
}

// Plan is everything the VM and the agent need to run a bundle.
type Plan struct {
	CPUs, MemoryMiB int
	// Shares are served by the VM's virtio-fs device: the rootfs
	// (RootfsShare) first, then bind mount sources.
	Shares []vmm.Share
	// ShareMounts place the bind shares inside the rootfs.
	ShareMounts []*api.ShareMount
	// GuestMounts are tmpfs, proc, sysfs, devpts, mqueue and cgroup
	// mounts, in spec order.
	GuestMounts []*api.GuestMount
	Hostname    string
	Process     *api.CreateProcessRequest
	// Warnings name spec fields that are not applied.
	Warnings []string
}

// guestFS are the mount types the agent mounts itself.
var guestFS = []string{"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "devtmpfs"}

// Plan maps the spec onto a VM.
func (b *Bundle) Plan(d Defaults) (*Plan, error) {
	s := b.Spec
	p := &Plan{Hostname: s.Hostname}
	p.Shares = append(p.Shares, vmm.Share{Name: RootfsShare, Path: b.RootfsPath(), ReadOnly: s.Root.Readonly})
	if err := p.mapMounts(s.Mounts); err != nil {
		return nil, err
	}
	if err := p.size(s.Linux, d); err != nil {
		return nil, err
	}
	proc, err := MapProcess(s.Process)
	if err != nil {
		return nil, err
	}
	p.Process = proc
	p.warnUnapplied(s)
	return p, nil
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

func (p *Plan) mapMounts(mounts []specs.Mount) error {
	for i, m := range mounts {
		switch {
		case isBind(m):
			st, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("mounts[%d]: bind source %s: %w", i, m.Source, err)
			}
			if !st.IsDir() && !st.Mode().IsRegular() {
				return fmt.Errorf("mounts[%d]: bind source %s is not a directory or regular file (devices and sockets cannot cross into the VM)", i, m.Source)
			}
			ro := slices.Contains(m.Options, "ro")
			name := "bind" + strconv.Itoa(i)
			p.Shares = append(p.Shares, vmm.Share{Name: name, Path: m.Source, ReadOnly: ro})
			p.ShareMounts = append(p.ShareMounts, &api.ShareMount{Share: name, Target: m.Destination, Readonly: ro})
		case slices.Contains(guestFS, m.Type):
			p.GuestMounts = append(p.GuestMounts, &api.GuestMount{Type: m.Type, Source: m.Source, Target: m.Destination, Options: m.Options})
		default:
			return fmt.Errorf("mounts[%d]: mount type %q at %s is not supported in a novm VM (bind, %s are)",
				i, m.Type, m.Destination, strings.Join(guestFS, ", "))
		}
	}
	return nil
}

// size turns cgroup limits into vCPUs and RAM.
func (p *Plan) size(l *specs.Linux, d Defaults) error {
	p.CPUs, p.MemoryMiB = DefaultCPUs, DefaultMemoryMiB
	if d.CPUs > 0 {
		p.CPUs = d.CPUs
	}
	if d.MemoryMiB > 0 {
		p.MemoryMiB = d.MemoryMiB
	}
	maxCPUs := d.MaxCPUs
	if maxCPUs <= 0 {
		maxCPUs = hostCPUs()
	}
	if l == nil || l.Resources == nil {
		return nil
	}
	r := l.Resources
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		mib := int((*r.Memory.Limit + 1<<20 - 1) >> 20)
		p.MemoryMiB = max(mib+GuestOverheadMiB, MinMemoryMiB)
	}
	if c := r.CPU; c != nil {
		switch {
		case c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0:
			p.CPUs = int((uint64(*c.Quota) + *c.Period - 1) / *c.Period)
		case c.Cpus != "":
			n, err := countCPUs(c.Cpus)
			if err != nil {
				return fmt.Errorf("linux.resources.cpu.cpus %q: %w", c.Cpus, err)
			}
			p.CPUs = n
		}
		if p.CPUs > maxCPUs {
			p.Warnings = append(p.Warnings, fmt.Sprintf("CPU limit of %d CPUs capped at the host's %d", p.CPUs, maxCPUs))
			p.CPUs = maxCPUs
		}
	}
	return nil
}

// countCPUs counts a cpuset list such as "0-3,6".
func countCPUs(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, err
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return 0, err
			}
		}
		if b < a {
			return 0, fmt.Errorf("range %s is backwards", part)
		}
		n += b - a + 1
	}
	return n, nil
}

func hostCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err == nil {
		if n, err := countCPUs(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return 1
}

// MapProcess turns a spec process (a container's, or an exec's) into the
// agent's request, running in the bundle's rootfs.
func MapProcess(sp *specs.Process) (*api.CreateProcessRequest, error) {
	if sp == nil {
		return nil, fmt.Errorf("process: missing")
	}
	req := &api.CreateProcessRequest{
		Args:            sp.Args,
		Env:             sp.Env,
		Cwd:             sp.Cwd,
		User:            &api.User{Uid: sp.User.UID, Gid: sp.User.GID, AdditionalGids: sp.User.AdditionalGids},
		Terminal:        sp.Terminal,
		NoNewPrivileges: sp.NoNewPrivileges,
		Rootfs:          RootfsShare,
	}
	if sp.User.Username != "" {
		return nil, fmt.Errorf("process.user.username %q: only numeric uid/gid are supported (Windows-only field)", sp.User.Username)
	}
	for _, r := range sp.Rlimits {
		if !strings.HasPrefix(r.Type, "RLIMIT_") {
			return nil, fmt.Errorf("process.rlimits: unknown type %q", r.Type)
		}
		req.Rlimits = append(req.Rlimits, &api.Rlimit{Type: r.Type, Soft: r.Soft, Hard: r.Hard})
	}
	return req, nil
}
