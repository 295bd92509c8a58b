// Package manager is the shim binary's life outside the Task API: `start`
// spawns the long-running shim (which holds the VMM) on a fresh socket,
// and `delete` cleans up after a shim that died: it kills a leftover shim
// process (and so its VM), unmounts the rootfs and removes the socket.
package manager

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// PidFile, in the bundle, holds the pid of the shim process serving it.
const PidFile = "novm-shim.pid"

// defaultSocketDir is where shim sockets go when containerd names no
// socket directory (as the shim library does).
var defaultSocketDir = filepath.Join(defaults.DefaultStateDir, "s")

// New returns the shim manager for the runtime name.
func New(name string) shim.Shim { return manager{name: name} }

type manager struct{ name string }

func (m manager) Name() string { return m.name }

func (m manager) Info(ctx context.Context, _ io.Reader) (*types.RuntimeInfo, error) {
	return &types.RuntimeInfo{Name: m.name}, nil
}

// Start runs the shim server as a new process in its own process group
// (so a signal to containerd's group does not reach it) and returns its
// socket address. A shim already serving this id is reused.
func (m manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	result := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = defaultSocketDir
	}
	addr, err := shim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), id, false)
	if err != nil {
		return nil, err
	}
	l, err := shim.NewSocket(addr)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
		if shim.CanConnect(addr) {
			result.Address = addr
			return result, nil
		}
		if err := shim.RemoveSocket(addr); err != nil {
			return nil, fmt.Errorf("remove stale shim socket: %w", err)
		}
		if l, err = shim.NewSocket(addr); err != nil {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			l.Close()
			shim.RemoveSocket(addr)
		}
	}()
	f, err := l.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", params.GetContainerdGrpcAddress()}
	if params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir, _ = os.Getwd()
	cmd.Env = os.Environ()
	if ttrpc := params.GetContainerdTtrpcAddress(); ttrpc != "" {
		cmd.Env = append(cmd.Env, "TTRPC_ADDRESS="+ttrpc)
	}
	cmd.ExtraFiles = []*os.File{f} // fd 3: the library serves on it
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			cmd.Process.Kill()
		}
	}()
	go cmd.Wait()
	if err := shim.WritePidFile(PidFile, cmd.Process.Pid); err != nil {
		return nil, err
	}
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("adjust the shim's OOM score: %w", err)
	}
	result.Address = addr
	return result, nil
}

// Stop is `shim delete`: containerd runs it in the bundle directory when
// the shim is gone or has to go. It must leave nothing behind.
func (m manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	bundle, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	if opts, ok := ctx.Value(shim.OptsKey{}).(shim.Opts); ok && opts.BundlePath != "" {
		bundle = opts.BundlePath
	}
	killShim(ctx, filepath.Join(bundle, PidFile))
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	removeSocket(ctx, bundle, id)
	return shim.StopStatus{ExitStatus: 128 + int(unix.SIGKILL), ExitedAt: time.Now()}, nil
}

// killShim kills the shim process named in the pid file, if it still runs
// this binary, and waits for it to be gone (its VM goes with it).
func killShim(ctx context.Context, pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || pid == os.Getpid() {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone
	}
	defer unix.Close(fd)
	// The pidfd pins this pid: check it is still a shim before the kill.
	self, _ := os.Executable()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || strings.TrimSuffix(exe, " (deleted)") != self {
		return
	}
	log.G(ctx).WithField("pid", pid).Warn("killing the leftover shim and its VM")
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return
	}
	// The pidfd becomes readable when the process exits.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, int((10 * time.Second).Milliseconds()))
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// removeSocket removes the shim's socket if its server died without
// doing so.
func removeSocket(ctx context.Context, bundle, id string) {
	if addr, err := shim.ReadAddress(filepath.Join(bundle, "address")); err == nil {
		shim.RemoveSocket(addr)
	}
	// "s" links to the socket directory (written by the shim library).
	socketDir, _ := os.Readlink(filepath.Join(bundle, "s"))
	if socketDir == "" {
		socketDir = defaultSocketDir
	}
	grpc := ""
	if f := flag.Lookup("address"); f != nil {
		grpc = f.Value.String()
	}
	if addr, err := shim.CreateSocketAddress(ctx, socketDir, grpc, id, false); err == nil {
		if err := shim.RemoveSocket(addr); err != nil && !errdefs.IsNotFound(err) && !os.IsNotExist(err) {
			log.G(ctx).WithError(err).Debug("remove shim socket")
		}
	}
}
