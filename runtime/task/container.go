package task

// This file is one container and the microVM it runs in: creating it
// (rootfs mounts, bundle, VM, the spec's guest mounts), starting its
// processes, recording their exits in the order containerd needs, and
// tearing everything down. The VM belongs to the container today; a pod
// (several containers in one VM) would move the sandbox up to the shim
// and give each container its own rootfs share (see README).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types"
	taskapi "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/bundle"
	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/runtime/options"
	"github.com/novm/novm/runtime/sandbox"
)

// processStart is when the shim process started (package init).
var processStart = time.Now()

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Exit statuses for processes that did not exit on their own.
const (
	// exitVMGone: the VM stopped under the process (guest crash, agent
	// lost, VMM killed).
	exitVMGone = 255
	// execGrace bounds the wait for exec processes to die after the init
	// process exited and the rest of the container was killed.
	execGrace = 10 * time.Second
	// shutdownGrace bounds the guest's own power-off.
	shutdownGrace = 10 * time.Second
)

type container struct {
	id, bundleDir string
	log           *logrus.Entry
	sb            *sandbox.Sandbox
	// rootfsMount is where containerd's rootfs mounts were mounted (""
	// if none were), to unmount at teardown.
	rootfsMount string
	init        *process
	// exit receives every recorded exit, for the service's events.
	exit func(*container, *process)

	mu       sync.Mutex
	execs    map[string]*process
	paused   bool
	stopping bool // the host is shutting the VM down
}

// createRequest is what containerd's Create carries that a container
// needs.
type createRequest struct {
	ID, Bundle, Namespace string
	Rootfs                []*types.Mount
	Stdio                 stdioPaths
	Config                options.Config
	Debug                 bool
}

// createContainer mounts the rootfs, boots the VM and prepares the
// container's filesystems. On error nothing is left behind.
func createContainer(ctx context.Context, r createRequest, log *logrus.Entry, exit func(*container, *process)) (_ *container, err error) {
	b, err := bundle.Load(r.Bundle)
	if err != nil {
		return nil, err
	}
	c := &container{id: r.ID, bundleDir: r.Bundle, log: log, execs: map[string]*process{}, exit: exit}
	defer func() {
		if err != nil {
			c.teardown()
		}
	}()
	began := time.Now()
	if len(r.Rootfs) > 0 {
		if err := mount.All(mount.FromProto(r.Rootfs), b.RootfsPath()); err != nil {
			return nil, fmt.Errorf("mount rootfs: %w", err)
		}
		c.rootfsMount = b.RootfsPath()
	}
	if err := b.CheckRootfs(); err != nil {
		return nil, err
	}
	plan, err := b.Plan(bundle.Defaults{CPUs: r.Config.CPUs, MemoryMiB: r.Config.MemoryMiB})
	if err != nil {
		return nil, err
	}
	for _, w := range plan.Warnings {
		log.Warnf("spec: %s", w)
	}
	pio, err := openIO(ctx, r.ID, r.Namespace, r.Stdio)
	if err != nil {
		return nil, err
	}
	plan.Process.Id = c.agentID("")
	plan.Process.Mounts = plan.ShareMounts
	c.init = newProcess("", plan.Process, r.Stdio, pio)

	vm := vmm.Config{Kernel: r.Config.Kernel, Initrd: r.Config.Initrd, Cmdline: r.Config.KernelArgs,
		CPUs: plan.CPUs, MemoryMiB: plan.MemoryMiB, Shares: plan.Shares, Log: log,
		CacheDir: "/var/cache/novm"}
	if r.Debug || r.Config.DebugConsole {
		vm.SerialOut = log.WriterLevel(logrus.DebugLevel)
	}
	log.WithFields(logrus.Fields{"cpus": plan.CPUs, "memory_mib": plan.MemoryMiB, "kernel": r.Config.Kernel}).Debug("booting VM")
	mounted := time.Now()
	if c.sb, err = sandbox.Boot(ctx, sandbox.Config{VM: vm}); err != nil {
		return nil, fmt.Errorf("boot VM: %w", err)
	}
	booted := time.Now()
	hostname := plan.Hostname
	if hostname == "" {
		// The VM is the container's own host: name it after the
		// container, as Docker does, rather than leave "(none)".
		hostname = r.ID[:min(len(r.ID), 63)]
	}
	if err := c.sb.PrepareRootfs(ctx, &api.PrepareRootfsRequest{Rootfs: bundle.RootfsShare,
		Mounts: plan.GuestMounts, Hostname: hostname}); err != nil {
		return nil, err
	}
	t := c.sb.Timings
	// One line per container with where its creation went (read by the
	// benchmarks; useful when a create is slow).
	log.WithFields(logrus.Fields{
		"shim_start_ms":  ms(began.Sub(processStart)),
		"rootfs_ms":      ms(mounted.Sub(began)),
		"vm_setup_ms":    ms(t.Setup),
		"agent_ready_ms": ms(t.Ready),
		"boot_ms":        ms(booted.Sub(mounted)),
		"prepare_ms":     ms(time.Since(booted)),
	}).Info("container created")
	go c.watchVM()
	return c, nil
}

// watchVM ends every process when the VM stops without the host asking.
func (c *container) watchVM() {
	<-c.sb.Done()
	c.mu.Lock()
	stopping := c.stopping
	procs := c.processes()
	c.mu.Unlock()
	if stopping {
		return
	}
	c.log.WithError(c.sb.ExitError()).Error("the container's VM stopped")
	// Started processes learn it from their Wait; created ones never will.
	for _, p := range procs {
		if st, _, _, _ := p.state(); st == taskapi.Status_CREATED {
			c.finish(p, exitVMGone, time.Now(), false)
		}
	}
}

// processes is init and the execs. Callers hold mu.
func (c *container) processes() []*process {
	ps := []*process{c.init}
	for _, p := range c.execs {
		ps = append(ps, p)
	}
	return ps
}

// process finds the init ("") or an exec process.
func (c *container) process(execID string) (*process, bool) {
	if execID == "" {
		return c.init, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	return p, ok
}

// notPaused fails calls that need the agent while the VM is paused (it
// would answer only after a resume).
func (c *container) notPaused() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is paused", c.id)
	}
	return nil
}

// agentID names a process for the agent: exec IDs are only unique per
// container.
func (c *container) agentID(execID string) string {
	if execID == "" {
		return c.id
	}
	return c.id + "/" + execID
}

// start runs a created process in the guest.
func (c *container) start(ctx context.Context, p *process) (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != taskapi.Status_CREATED {
		return 0, fmt.Errorf("process is %s, not created", p.status)
	}
	gp, err := c.sb.Start(ctx, p.req, sandbox.Stdio{Stdin: p.io.Stdin(), Stdout: p.io.stdout, Stderr: p.io.stderr})
	if err != nil {
		var se *sandbox.StartError
		if errors.As(err, &se) {
			// The command cannot run: the process is over, with the
			// status a shell would give.
			p.mu.Unlock()
			c.finish(p, uint32(se.ExitStatus), time.Now(), false)
			p.mu.Lock()
		}
		return 0, err
	}
	p.guest, p.pid, p.status = gp, gp.Pid, taskapi.Status_RUNNING
	go c.waitExit(p, gp)
	return gp.Pid, nil
}

// finish records a process's exit, once: its stdio is closed and the exit
// reported.
func (c *container) finish(p *process, status uint32, at time.Time, oom bool) {
	if p.setExited(status, at, oom) {
		p.io.Close()
		c.exit(c, p)
	}
}

// waitExit records a started process's exit. When the init process
// exits, the rest of the container is killed (its PID namespace would
// end) and the init's exit is recorded after the execs', as containerd
// expects.
func (c *container) waitExit(p *process, gp *sandbox.Process) {
	code, at, err := gp.Wait(context.Background())
	if err != nil {
		c.log.WithError(err).WithField("exec_id", p.id).Warn("process lost")
		code, at = exitVMGone, time.Now()
	}
	p.io.Close() // its output is all copied out
	if p == c.init {
		c.killExecs()
	}
	c.finish(p, uint32(code), at, gp.OOMKilled)
}

// killExecs kills what is left in the container after its init exited
// and waits (bounded) for the execs' exits to be recorded.
func (c *container) killExecs() {
	c.mu.Lock()
	var running []*process
	for _, e := range c.execs {
		if st, _, _, _ := e.state(); st != taskapi.Status_STOPPED {
			running = append(running, e)
		}
	}
	c.mu.Unlock()
	select {
	case <-c.sb.Done():
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), execGrace)
	defer cancel()
	if err := c.sb.SignalAll(ctx, bundle.RootfsShare, int(unix.SIGKILL)); err != nil {
		c.log.WithError(err).Warn("kill the container's remaining processes")
	}
	for _, e := range running {
		if st, _, _, _ := e.state(); st == taskapi.Status_CREATED {
			c.finish(e, 128+uint32(unix.SIGKILL), time.Now(), false)
			continue
		}
		e.wait(ctx)
	}
}

// teardown stops the VM and unmounts the rootfs; safe to call on a
// partly created container and more than once.
func (c *container) teardown() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	if c.sb != nil {
		c.sb.Resume() // a paused guest cannot power off
		if err := c.sb.Shutdown(shutdownGrace); err != nil {
			c.log.WithError(err).Warn("VM shutdown")
		}
	}
	if c.init != nil && c.init.io != nil {
		c.init.io.Close()
	}
	if c.rootfsMount != "" {
		if err := mount.UnmountRecursive(c.rootfsMount, 0); err != nil {
			c.log.WithError(err).Warn("unmount rootfs")
		} else {
			c.rootfsMount = ""
		}
	}
}
