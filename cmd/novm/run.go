package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/novm/novm/agent/api"
	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/internal/termios"
	"github.com/novm/novm/runtime/sandbox"
	"github.com/novm/novm/runtime/vmctl"
)

// exitCode carries a process's exit status out of runRun.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func runRun(args []string) error {
	fs := flag.NewFlagSet("novm run", flag.ContinueOnError)
	var vf vmFlags
	vf.register(fs, "initramfs-busybox.cpio")
	interactive := fs.Bool("i", false, "keep stdin open and forward it to the process")
	tty := fs.Bool("t", false, "give the process a terminal")
	workdir := fs.String("w", "/", "working directory in the guest")
	user := fs.String("user", "0:0", "UID:GID to run as")
	rootfs := fs.String("rootfs", "", "host directory to use as the root filesystem, served over virtio-fs (/proc, /sys, /dev, /tmp are mounted inside)")
	var shares stringList
	fs.Var(&shares, "share", "HOST:GUEST[:ro] host directory or file shared at GUEST over virtio-fs (repeatable)")
	var env stringList
	fs.Var(&env, "e", "environment variable K=V (repeatable)")
	name := fs.String("name", fmt.Sprintf("novm-%d", os.Getpid()), "name of the VM, for `novm share --vm NAME`")
	stateDir := fs.String("state-dir", vmctl.DefaultStateDir, "directory for the VM's control socket")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "novm run: no command given (novm run [flags] -- CMD [ARGS...])")
		return errUsage
	}
	if err := vf.check(); err != nil {
		return err
	}
	uid, gid, err := parseUser(*user)
	if err != nil {
		return err
	}
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("-e %q: want K=V", e)
		}
	}
	req := &api.CreateProcessRequest{
		Id:       "run",
		Args:     fs.Args(),
		Env:      append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, env...),
		Cwd:      *workdir,
		User:     &api.User{Uid: uid, Gid: gid},
		Terminal: *tty,
	}
	if *tty {
		req.Env = append(req.Env, "TERM="+termName())
	}
	cfg := vf.sandboxConfig()
	if *rootfs != "" {
		st, err := os.Stat(*rootfs)
		if err != nil || !st.IsDir() {
			return fmt.Errorf("--rootfs %s: not a directory", *rootfs)
		}
		cfg.VM.Shares = append(cfg.VM.Shares, vmm.Share{Name: "rootfs", Path: *rootfs})
		req.Rootfs = "rootfs"
	}
	table := newShareTable(req.Rootfs)
	for _, sh := range shares {
		host, guest, ro, err := parseShare(sh)
		if err != nil {
			return err
		}
		name, err := table.name(guest)
		if err != nil {
			return err
		}
		cfg.VM.Shares = append(cfg.VM.Shares, vmm.Share{Name: name, Path: host, ReadOnly: ro})
		req.Mounts = append(req.Mounts, &api.ShareMount{Share: name, Target: guest, Readonly: ro})
	}
	ctl, removeCtl, err := vmctl.Listen(*stateDir, *name)
	if err != nil {
		return err
	}
	defer removeCtl()
	go vmctl.Serve(ctl, table.handle, cfg.VM.Log)

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGWINCH)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bootDone := make(chan struct{})
	go func() {
		// A signal during boot aborts it.
		select {
		case <-sigs:
			cancel()
		case <-bootDone:
		}
	}()
	sb, err := sandbox.Boot(ctx, cfg)
	close(bootDone)
	if err != nil {
		return err
	}
	defer sb.Close()
	table.attach(sb)

	stdio := sandbox.Stdio{Stdout: os.Stdout, Stderr: os.Stderr}
	if *interactive {
		stdio.Stdin = os.Stdin
	}
	restore := func() {}
	if *tty && termios.IsTerminal(0) && *interactive {
		// Raw: keys (Ctrl-C too) go to the guest's terminal, which does
		// the line discipline.
		if restore, err = termios.MakeRaw(0); err != nil {
			return err
		}
	}
	proc, err := sb.Start(context.Background(), req, stdio)
	if err != nil {
		restore()
		var se *sandbox.StartError
		if errors.As(err, &se) {
			fmt.Fprintf(os.Stderr, "novm run: %v\n", se.Err)
			sb.Shutdown(10 * time.Second)
			return exitCode(se.ExitStatus)
		}
		return err
	}
	if *tty {
		resize(proc)
	}
	go func() {
		for s := range sigs {
			if s == unix.SIGWINCH {
				if *tty {
					resize(proc)
				}
				continue
			}
			// Forwarded to the process; the VM goes when it exits.
			proc.Signal(context.Background(), int(s.(unix.Signal)), true)
		}
	}()
	code, _, err := proc.Wait(context.Background())
	restore()
	if err != nil {
		return err
	}
	if err := sb.Shutdown(30 * time.Second); err != nil {
		return err
	}
	return exitCode(code)
}

// parseShare reads HOST:GUEST[:ro].
func parseShare(s string) (host, guest string, ro bool, err error) {
	parts := strings.Split(s, ":")
	if len(parts) == 3 && parts[2] == "ro" {
		ro, parts = true, parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return "", "", false, fmt.Errorf("--share %q: want HOST:GUEST[:ro] with an absolute GUEST path", s)
	}
	host, err = shareHost(parts[0])
	if err != nil {
		return "", "", false, fmt.Errorf("--share %q: %w", s, err)
	}
	return host, parts[1], ro, nil
}

func parseUser(s string) (uint32, uint32, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--user %q: want numeric UID:GID", s)
	}
	return uint32(uid), uint32(gid), nil
}

func termName() string {
	if t := os.Getenv("TERM"); t != "" {
		return t
	}
	return "xterm"
}

// resize copies the local terminal's size to the process's terminal
// (80x24 when stdout is not a terminal).
func resize(p *sandbox.Process) {
	w, h := 80, 24
	if ws, err := unix.IoctlGetWinsize(1, unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		w, h = int(ws.Col), int(ws.Row)
	}
	p.Resize(context.Background(), w, h)
}
