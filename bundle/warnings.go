package bundle

// This file lists the spec fields a microVM does not apply, each with the
// reason a user reads in the shim's log.

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func (p *Plan) warn(format string, a ...any) {
	p.Warnings = append(p.Warnings, fmt.Sprintf(format, a...))
}

func (p *Plan) warnUnapplied(s *specs.Spec) {
	if s.Hooks != nil && (len(s.Hooks.Prestart) > 0 || len(s.Hooks.CreateRuntime) > 0 || len(s.Hooks.CreateContainer) > 0 ||
		len(s.Hooks.StartContainer) > 0 || len(s.Hooks.Poststart) > 0 || len(s.Hooks.Poststop) > 0) {
		p.warn("hooks are not run")
	}
	if pr := s.Process; pr != nil {
		if pr.Capabilities != nil {
			p.warn("process.capabilities are not applied: the process keeps its guest root's capabilities inside the VM")
		}
		if pr.ApparmorProfile != "" || pr.SelinuxLabel != "" {
			p.warn("process AppArmor/SELinux labels are not applied: the guest kernel has no LSM")
		}
		if pr.OOMScoreAdj != nil {
			p.warn("process.oomScoreAdj is not applied")
		}
	}
	l := s.Linux
	if l == nil {
		return
	}
	if l.Seccomp != nil {
		p.warn("linux.seccomp is not applied: the VM boundary, not a syscall filter, isolates the container")
	}
	if len(l.Sysctl) > 0 {
		p.warn("linux.sysctl is not applied")
	}
	if len(l.MaskedPaths) > 0 || len(l.ReadonlyPaths) > 0 {
		p.warn("linux.maskedPaths and readonlyPaths are not applied inside the guest yet")
	}
	if len(l.Devices) > 0 {
		p.warn("linux.devices are not passed into the VM")
	}
	for _, ns := range l.Namespaces {
		if ns.Type == specs.NetworkNamespace && ns.Path != "" {
			p.warn("network namespace %s is not joined: the VM has no network device yet", ns.Path)
		}
	}
	if r := l.Resources; r != nil {
		if r.Pids != nil || r.BlockIO != nil || len(r.HugepageLimits) > 0 || r.Network != nil || len(r.Rdma) > 0 {
			p.warn("linux.resources other than memory and CPU are not applied")
		}
	}
}
