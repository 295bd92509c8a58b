// containerd-shim-novm-v2 is novm's containerd shim (runtime
// io.containerd.novm.v2): each container runs in its own microVM, whose
// VMM lives in this process.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	"github.com/novm/novm/runtime/manager"
	"github.com/novm/novm/runtime/task"
)

// RuntimeName is what containerd users pass as --runtime.
const RuntimeName = "io.containerd.novm.v2"

func init() {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pub, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			sd, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			opts, _ := ic.Context.Value(shim.OptsKey{}).(shim.Opts)
			return task.NewService(ic.Context, pub.(shim.Publisher), sd.(shutdown.Service), opts.Debug)
		},
	})
}

func main() {
	// The shim starts no container processes on the host (they run in
	// the guest), so it neither reaps nor adopts orphans.
	shim.RunShim(context.Background(), manager.New(RuntimeName), func(c *shim.Config) {
		c.NoSubreaper = true
		c.NoReaper = true
	})
}
