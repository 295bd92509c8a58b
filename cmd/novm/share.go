package main

// This file is `novm share add|rm`, which changes the shares of a VM that
// `novm run` started, and the side of `novm run` that carries them out.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/novm/novm/hypervisor/vmm"
	"github.com/novm/novm/runtime/sandbox"
	"github.com/novm/novm/runtime/vmctl"
)

const shareUsage = `usage: novm share add [--ro] --vm NAME HOST GUEST
       novm share rm --vm NAME [HOST] GUEST`

func runShare(args []string) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "rm") {
		fmt.Fprintln(os.Stderr, shareUsage)
		return errUsage
	}
	verb := args[0]
	fs := flag.NewFlagSet("novm share "+verb, flag.ContinueOnError)
	vm := fs.String("vm", "", "name of the VM (novm run --name)")
	stateDir := fs.String("state-dir", vmctl.DefaultStateDir, "directory of running VMs' control sockets")
	ro := fs.Bool("ro", false, "share read-only (add)")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *vm == "" {
		fmt.Fprintf(os.Stderr, "novm share %s: --vm is required\n%s\n", verb, shareUsage)
		return errUsage
	}
	req := vmctl.Request{Op: vmctl.OpShareAdd, ReadOnly: *ro}
	switch {
	case verb == "add" && fs.NArg() == 2:
		host, err := shareHost(fs.Arg(0))
		if err != nil {
			return err
		}
		req.Host, req.Guest = host, fs.Arg(1)
	case verb == "rm" && (fs.NArg() == 1 || fs.NArg() == 2):
		req.Op, req.Guest = vmctl.OpShareRm, fs.Arg(fs.NArg()-1)
	default:
		fmt.Fprintln(os.Stderr, shareUsage)
		return errUsage
	}
	if !filepath.IsAbs(req.Guest) {
		return fmt.Errorf("guest path %q is not absolute", req.Guest)
	}
	return vmctl.Call(*stateDir, *vm, req)
}

// shareHost checks a host path to share and makes it absolute.
func shareHost(p string) (string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("share %s: %w", p, err)
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return "", fmt.Errorf("share %s: not a directory or regular file", p)
	}
	return filepath.Abs(p)
}

// shareTable is what `novm run` knows of its VM's shares, by guest path.
type shareTable struct {
	mu      sync.Mutex
	sb      *sandbox.Sandbox
	rootfs  string // share name of the process's root filesystem, if any
	byGuest map[string]string
	next    int
}

func newShareTable(rootfs string) *shareTable {
	return &shareTable{rootfs: rootfs, byGuest: map[string]string{}}
}

// name assigns the share name for a new share at guest.
func (t *shareTable) name(guest string) (string, error) {
	guest = filepath.Clean(guest)
	if _, ok := t.byGuest[guest]; ok {
		return "", fmt.Errorf("a share is already mounted at %s", guest)
	}
	name := fmt.Sprintf("share%d", t.next)
	t.next++
	t.byGuest[guest] = name
	return name, nil
}

// handle carries out a control request against the running sandbox.
func (t *shareTable) handle(req vmctl.Request) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sb == nil {
		return fmt.Errorf("the VM is not running yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	guest := filepath.Clean(req.Guest)
	mount := sandbox.Mount{Rootfs: t.rootfs, Target: guest}
	switch req.Op {
	case vmctl.OpShareAdd:
		host, err := shareHost(req.Host)
		if err != nil {
			return err
		}
		name, err := t.name(guest)
		if err != nil {
			return err
		}
		if err := t.sb.AddShare(ctx, vmm.Share{Name: name, Path: host, ReadOnly: req.ReadOnly}, mount); err != nil {
			delete(t.byGuest, guest)
			return err
		}
		return nil
	case vmctl.OpShareRm:
		name, ok := t.byGuest[guest]
		if !ok {
			return fmt.Errorf("no share is mounted at %s", guest)
		}
		if err := t.sb.RemoveShare(ctx, name, mount); err != nil {
			return err
		}
		delete(t.byGuest, guest)
		return nil
	}
	return fmt.Errorf("unknown operation %q", req.Op)
}

func (t *shareTable) attach(sb *sandbox.Sandbox) {
	t.mu.Lock()
	t.sb = sb
	t.mu.Unlock()
}
