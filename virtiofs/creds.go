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
}

func newCredWorker() *credWorker {
	w := &credWorker{work: make(chan func())}
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
func (w *credWorker) as(uid, gid uint32, fn func()) {
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
