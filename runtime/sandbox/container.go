package sandbox

// This file holds what a container runtime asks of a whole sandbox
// beyond processes: preparing a root filesystem from a spec, resource
// numbers, and pausing the VM.

import (
	"context"

	"github.com/novm/novm/agent/api"
)

// PrepareRootfs mounts a rootfs share with the spec's guest mounts and
// sets the hostname (see the agent API).
func (s *Sandbox) PrepareRootfs(ctx context.Context, req *api.PrepareRootfsRequest) error {
	if _, err := s.agent.PrepareRootfs(ctx, req); err != nil {
		return s.agentError("prepare the root filesystem", err)
	}
	return nil
}

// SignalAll sends sig to every process in a root filesystem (share name;
// "" for the guest's own root), except the agent.
func (s *Sandbox) SignalAll(ctx context.Context, rootfs string, sig int) error {
	if _, err := s.agent.SignalAll(ctx, &api.SignalAllRequest{Rootfs: rootfs, Signal: uint32(sig)}); err != nil {
		return s.agentError("signal all processes", err)
	}
	return nil
}

// Stats asks the agent for the guest's resource use.
func (s *Sandbox) Stats(ctx context.Context) (*api.StatsResponse, error) {
	r, err := s.agent.Stats(ctx, &api.StatsRequest{})
	if err != nil {
		return nil, s.agentError("report stats", err)
	}
	return r, nil
}

// Pause stops the VM's vCPUs; Resume lets them run again.
func (s *Sandbox) Pause() error  { return s.m.Pause() }
func (s *Sandbox) Resume() error { return s.m.Resume() }

// Done is closed when the VM has stopped.
func (s *Sandbox) Done() <-chan struct{} { return s.m.Done() }

// ExitError describes why a VM that was not shut down by the host ended.
func (s *Sandbox) ExitError() error { return s.exitError("while running") }
