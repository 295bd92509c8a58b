package sandbox

// This file changes what the guest sees of the host while it runs: a
// share is exported by the VMM's virtio-fs server and then mounted by the
// agent; removal goes the other way.

import (
	"context"
	"fmt"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/vmm"
)

// Mount says where the guest mounts a share.
type Mount struct {
	// Rootfs is the share name of the root filesystem Target is in;
	// empty for the guest's own root.
	Rootfs string
	Target string
}

// AddShare exports sh and mounts it at m.Target. Processes already running
// in m.Rootfs see it at once. On error nothing is left behind.
func (s *Sandbox) AddShare(ctx context.Context, sh vmm.Share, m Mount) error {
	if err := s.m.AddShare(sh); err != nil {
		return err
	}
	_, err := s.agent.MountShare(ctx, &api.MountShareRequest{Rootfs: m.Rootfs,
		Mount: &api.ShareMount{Share: sh.Name, Target: m.Target, Readonly: sh.ReadOnly}})
	if err != nil {
		s.m.RemoveShare(sh.Name)
		return fmt.Errorf("mount share at %s: %w", m.Target, err)
	}
	return nil
}

// RemoveShare unmounts a share and withdraws it. A share in use in the
// guest is left as it was and the error says it is busy.
func (s *Sandbox) RemoveShare(ctx context.Context, name string, m Mount) error {
	if _, err := s.agent.UnmountShare(ctx, &api.UnmountShareRequest{Rootfs: m.Rootfs, Target: m.Target}); err != nil {
		return fmt.Errorf("unmount share at %s: %w", m.Target, err)
	}
	return s.m.RemoveShare(name)
}
