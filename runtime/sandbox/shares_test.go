package sandbox

import (
	"testing"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/vmm"
)

// The VMM exports and the agent mounts the same virtio-fs tag; the two
// constants live apart because the agent API must not import the VMM.
func TestShareTagsAgree(t *testing.T) {
	if vmm.FSTag != api.SharesTag {
		t.Fatalf("VMM tag %q, agent tag %q", vmm.FSTag, api.SharesTag)
	}
}
