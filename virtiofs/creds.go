package virtiofs

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// credWorker runs filesystem calls with a guest caller's identity. Its
// goroutine is locked to one OS thread for its whole life: setfsuid and
// setfsgid are per-thread, and so is the empty supplementary group list
// it sets at start (a request must never get the VMM's groups:
// CVE-2022-0358). Nothing else runs on that thread.
type credWorker struct {
	work chan func()
	// rootVMM: the VMM runs as root, so a guest root caller's request can
	// run on the calling thread (see as).
	rootVMM bool
}

func newCredWorker() *credWorker {
	w := &credWorker{work: make(chan func()), rootVMM: unix.Geteuid() == 0 && unix.Getegid() == 0}
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0)
		close(started)
		for fn := range w.work {
			fn()
		}
	}()
	<-started
	return w
}

// as runs fn with fsuid/fsgid set to the caller's, then back to the
// process's own. Changing fsuid away from 0 also drops the file
// capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_CHOWN) for
// the call, so the host kernel applies the caller's permissions and
// clears SUID/SGID on writes and chowns as it does for any user.
//
// A request from the guest's root, when the VMM itself runs as root, runs
// right here instead: fsuid/fsgid 0 are what every VMM thread already has,
// and with all capabilities the supplementary groups decide nothing (DAC
// is overridden, SGID is kept by CAP_FSETID either way). That saves the
// hand-off to the worker thread, which costs more than a 4 KiB write.
func (w *credWorker) as(uid, gid uint32, fn func()) {
	if uid == 0 && gid == 0 && w.rootVMM {
		fn()
		return
	}
	done := make(chan struct{})
	w.work <- func() {
		defer close(done)
		unix.Setfsgid(int(gid))
		unix.Setfsuid(int(uid))
		defer func() {
			unix.Setfsuid(0)
			unix.Setfsgid(0)
		}()
		fn()
	}
	<-done
}

func (w *credWorker) close() { close(w.work) }
