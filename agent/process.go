package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/novm/novm/agent/api"
)

// drainGrace bounds how long Wait waits for output after the process
// exited: a background child that keeps stdout open must not hang Wait.
const drainGrace = 5 * time.Second

// process is one process the host asked for, from create to delete.
type process struct {
	id  string
	req *api.CreateProcessRequest

	mu       sync.Mutex
	started  bool
	pid      int
	pty      *os.File // master side, with a terminal
	stdin    io.WriteCloser
	attached map[string]chan net_conn // stream name → conn, filled by attach
	exited   chan struct{}
	status   int
	exitedAt time.Time
	// oomBase is the guest's OOM-kill count at start; a SIGKILL exit with
	// the count grown since is reported as an OOM kill.
	oomBase   uint64
	oomKilled bool
	drained   chan struct{} // output copied out and streams closed
}

// net_conn is what an attached stdio stream offers.
type net_conn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

func newProcess(req *api.CreateProcessRequest) *process {
	p := &process{id: req.Id, req: req, exited: make(chan struct{}), drained: make(chan struct{}),
		attached: map[string]chan net_conn{}}
	for _, s := range p.streams() {
		p.attached[s] = make(chan net_conn, 1)
	}
	return p
}

// streams are the stdio streams the host must attach before Start.
func (p *process) streams() []string {
	s := []string{api.StreamStdout}
	if !p.req.Terminal {
		s = append(s, api.StreamStderr)
	}
	if p.req.Stdin {
		s = append(s, api.StreamStdin)
	}
	return s
}

func (p *process) attach(stream string, c net_conn) error {
	ch, ok := p.attached[stream]
	if !ok {
		return fmt.Errorf("process %s has no %s stream", p.id, stream)
	}
	select {
	case ch <- c:
		return nil
	default:
		return fmt.Errorf("process %s: %s already attached", p.id, stream)
	}
}

// attachWait bounds how long Start waits for a stream the host opened
// before calling it: the connection and the RPC race, and on an emulating
// KVM under load the guest can take seconds to accept.
const attachWait = 2 * time.Minute

// takeStream returns the attached stream, waiting for it if needed.
func (p *process) takeStream(ctx context.Context, stream string) (net_conn, error) {
	select {
	case c := <-p.attached[stream]:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(attachWait):
		return nil, status.Errorf(codes.FailedPrecondition, "process %s: %s stream not attached", p.id, stream)
	}
}

// start forks and execs the process with its stdio wired to the streams.
func (p *process) start(ctx context.Context, r *reaper) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return 0, status.Errorf(codes.FailedPrecondition, "process %s already started", p.id)
	}
	req := p.req
	var err error
	if len(req.Args) == 0 {
		return 0, status.Errorf(codes.InvalidArgument, "process %s: no command", p.id)
	}
	root, err := mountShares(req.Rootfs, req.Mounts)
	if err != nil {
		return 0, err
	}
	ns := rootfsNamespace(req.Rootfs)
	cwd := req.Cwd
	if cwd == "" {
		cwd = "/"
	}
	// The command is resolved, and a working directory the image names
	// but its rootfs lacks is created (as runc does), the way the process
	// will see them: inside its mount namespace.
	var path string
	err = inMountNS(ns, func() error {
		var err error
		if path, err = lookPath(req.Args[0], req.Env); err != nil {
			return err
		}
		if err := os.MkdirAll(cwd, 0o755); err != nil {
			return status.Errorf(codes.FailedPrecondition, "working directory %s: %v", cwd, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	conns := map[string]net_conn{}
	for _, s := range p.streams() {
		c, err := p.takeStream(ctx, s)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return 0, err
		}
		conns[s] = c
	}
	cmd := &exec.Cmd{Path: path, Args: req.Args, Env: req.Env, Dir: cwd}
	u := req.User
	if u == nil {
		u = &api.User{}
	}
	attr := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.Uid, Gid: u.Gid, Groups: u.AdditionalGids}}
	var childEnds []*os.File
	var copiers []func()
	if req.Terminal {
		master, slave, err := openPty(root)
		if err != nil {
			return 0, status.Errorf(codes.Internal, "pty: %v", err)
		}
		p.pty = master
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		attr.Setsid, attr.Setctty, attr.Ctty = true, true, 0
		childEnds = append(childEnds, slave)
		out := conns[api.StreamStdout]
		copiers = append(copiers, func() { io.Copy(out, master); out.CloseWrite() })
		if in, ok := conns[api.StreamStdin]; ok {
			go func() { io.Copy(master, in) }()
		}
	} else {
		attr.Setpgid = true
		for _, s := range []string{api.StreamStdout, api.StreamStderr} {
			rd, wr, err := os.Pipe()
			if err != nil {
				return 0, status.Errorf(codes.Internal, "pipe: %v", err)
			}
			if s == api.StreamStdout {
				cmd.Stdout = wr
			} else {
				cmd.Stderr = wr
			}
			childEnds = append(childEnds, wr)
			c := conns[s]
			copiers = append(copiers, func() { io.Copy(c, rd); rd.Close(); c.CloseWrite() })
		}
		if in, ok := conns[api.StreamStdin]; ok {
			rd, wr, err := os.Pipe()
			if err != nil {
				return 0, status.Errorf(codes.Internal, "pipe: %v", err)
			}
			cmd.Stdin = rd
			childEnds = append(childEnds, rd)
			p.stdin = wr
			go func() { io.Copy(wr, in); wr.Close() }()
		}
	}
	cmd.SysProcAttr = attr
	p.oomBase = oomKills()
	restore, err := applyRlimits(req.Rlimits)
	if err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "process %s: %v", p.id, err)
	}
	pid, err := r.start(func() (int, error) {
		// Forked from a thread inside the rootfs's mount namespace (its
		// root and cwd are the container's) and, if asked, with
		// no_new_privs set, which the child inherits.
		err := inMountNS(ns, func() error {
			if req.NoNewPrivileges {
				if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
					return err
				}
			}
			return cmd.Start()
		})
		if err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	}, p.exit)
	restore()
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return 0, execError(req.Args[0], err)
	}
	p.started, p.pid = true, pid
	var wg sync.WaitGroup
	for _, cp := range copiers {
		wg.Add(1)
		go func() { defer wg.Done(); cp() }()
	}
	go func() {
		wg.Wait()
		close(p.drained)
	}()
	return pid, nil
}

// exit records the exit status (from the reaper).
func (p *process) exit(ws unix.WaitStatus) {
	p.mu.Lock()
	switch {
	case ws.Signaled():
		p.status = 128 + int(ws.Signal())
		p.oomKilled = ws.Signal() == unix.SIGKILL && oomKills() > p.oomBase
	default:
		p.status = ws.ExitStatus()
	}
	p.exitedAt = time.Now()
	p.mu.Unlock()
	close(p.exited)
	if p.pty != nil {
		// The pty's output ends when every holder of the slave is gone;
		// the master is closed once that output was copied out.
		go func() {
			select {
			case <-p.drained:
			case <-time.After(drainGrace):
			}
			p.pty.Close()
		}()
	}
}

// wait blocks until the process exited and its output was drained (or the
// drain grace passed).
func (p *process) wait() (int, time.Time) {
	<-p.exited
	select {
	case <-p.drained:
	case <-time.After(drainGrace):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.exitedAt
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// lookPath resolves a command like a shell would, with the process's PATH,
// on the calling thread (which has joined the process's mount namespace).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", status.Errorf(codes.NotFound, "%s: no such file or directory", name)
		}
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", status.Errorf(codes.NotFound, "%s: command not found", name)
}

// execError maps exec failures to the codes the host turns into 127/126.
func execError(name string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return status.Errorf(codes.NotFound, "%s: %v", name, err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.ENOEXEC):
		return status.Errorf(codes.PermissionDenied, "%s: %v", name, err)
	}
	// Anything else the kernel refused (a bad uid is EINVAL): the command
	// could not be executed as asked.
	return status.Errorf(codes.InvalidArgument, "%s: %v", name, err)
}

// openPty opens a new pseudo-terminal pair (no cgo: ptmx + ioctls) in the
// devpts instance of root's /dev/pts, so the process finds its terminal
// under its own /dev/pts (ttyname, tty).
func openPty(root string) (master, slave *os.File, err error) {
	ptmx := inRoot(root, "/dev/pts/ptmx")
	if _, err := os.Stat(ptmx); err != nil {
		ptmx = inRoot(root, "/dev/ptmx")
	}
	m, err := os.OpenFile(ptmx, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	s, err := os.OpenFile(inRoot(root, "/dev/pts/"+strconv.Itoa(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// rlimitMu serialises process starts that change the agent's own limits:
// a child inherits them at fork, and os/exec has no per-child rlimits.
var rlimitMu sync.Mutex

// applyRlimits sets the limits on the agent for the next fork and returns
// how to restore them. The agent runs as root, so it can raise them back.
func applyRlimits(limits []*api.Rlimit) (func(), error) {
	if len(limits) == 0 {
		return func() {}, nil
	}
	rlimitMu.Lock()
	var saved []func()
	restore := func() {
		for i := len(saved) - 1; i >= 0; i-- {
			saved[i]()
		}
		rlimitMu.Unlock()
	}
	for _, l := range limits {
		res, ok := rlimitNames[l.Type]
		if !ok {
			restore()
			return nil, fmt.Errorf("unknown rlimit %q", l.Type)
		}
		var old unix.Rlimit
		if err := unix.Getrlimit(res, &old); err != nil {
			restore()
			return nil, err
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			restore()
			return nil, fmt.Errorf("%s: %w", l.Type, err)
		}
		saved = append(saved, func() { unix.Setrlimit(res, &old) })
	}
	return restore, nil
}
