package main

// The semantics suite: POSIX behaviour an application relies on. Every
// fact is independent of inode numbers and clock values so a guest on a
// share and the host on a local directory print the same lines.

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

type semanticCheck struct {
	name string
	run  func(f *facts, dir string)
}

var semanticChecks = []semanticCheck{
	{"create", checkCreate},
	{"append", checkAppend},
	{"truncate", checkTruncate},
	{"rename", checkRename},
	{"links", checkLinks},
	{"permissions", checkPermissions},
	{"times", checkTimes},
	{"readdir", checkReaddir},
	{"fsync", checkFsync},
	{"xattr", checkXattr},
	{"unlink-open", checkUnlinkOpen},
	{"mmap", checkMmap},
	{"special", checkSpecial},
}

func readAll(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return errName(err)
	}
	return strconv.Quote(string(b))
}

func mode(path string) string {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return errName(err)
	}
	return strconv.FormatUint(uint64(st.Mode), 8)
}

func checkCreate(f *facts, d string) {
	p := d + "/f"
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640)
	f.add("create excl", err)
	n, err := unix.Write(fd, []byte("hello"))
	f.add("write", n, err)
	buf := make([]byte, 16)
	n, err = unix.Pread(fd, buf, 1)
	f.add("pread", strconv.Quote(string(buf[:n])), err)
	unix.Close(fd)
	_, err = unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o640)
	f.add("create excl again", err)
	f.add("mode", mode(p))
	fd, err = unix.Open(p, unix.O_RDWR|unix.O_TRUNC, 0)
	f.add("open trunc", err, readAll(p))
	unix.Close(fd)
	_, err = unix.Open(d+"/missing", unix.O_RDONLY, 0)
	f.add("open missing", err)
	_, err = unix.Open(p+"/x", unix.O_CREAT|unix.O_RDWR, 0o644)
	f.add("create under a file", err)
}

func checkAppend(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, []byte("ab"), 0o644)
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_APPEND, 0)
	f.add("open append", err)
	unix.Pwrite(fd, []byte("c"), 0) // O_APPEND wins over the offset on Linux
	unix.Write(fd, []byte("d"))
	unix.Close(fd)
	f.add("content", readAll(p))
}

func checkTruncate(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, []byte("0123456789"), 0o644)
	f.add("truncate 4", unix.Truncate(p, 4), readAll(p))
	fd, _ := unix.Open(p, unix.O_RDWR, 0)
	f.add("ftruncate 6", unix.Ftruncate(fd, 6), readAll(p))
	unix.Close(fd)
	f.add("truncate dir", unix.Truncate(d, 0))
}

func checkRename(f *facts, d string) {
	os.WriteFile(d+"/a", []byte("A"), 0o644)
	os.WriteFile(d+"/b", []byte("B"), 0o644)
	f.add("rename", unix.Rename(d+"/a", d+"/c"), readAll(d+"/c"), readAll(d+"/a"))
	f.add("rename over", unix.Rename(d+"/c", d+"/b"), readAll(d+"/b"))
	os.WriteFile(d+"/a", []byte("A2"), 0o644)
	f.add("noreplace", unix.Renameat2(unix.AT_FDCWD, d+"/a", unix.AT_FDCWD, d+"/b", unix.RENAME_NOREPLACE))
	f.add("exchange", unix.Renameat2(unix.AT_FDCWD, d+"/a", unix.AT_FDCWD, d+"/b", unix.RENAME_EXCHANGE), readAll(d+"/a"), readAll(d+"/b"))
	f.add("exchange missing", unix.Renameat2(unix.AT_FDCWD, d+"/a", unix.AT_FDCWD, d+"/zz", unix.RENAME_EXCHANGE))
	os.Mkdir(d+"/d1", 0o755)
	os.Mkdir(d+"/d2", 0o755)
	os.WriteFile(d+"/d1/x", nil, 0o644)
	f.add("dir over empty dir", unix.Rename(d+"/d1", d+"/d2"), readAll(d+"/d2/x"))
	os.Mkdir(d+"/d3", 0o755)
	f.add("dir over non-empty", unix.Rename(d+"/d3", d+"/d2"))
	f.add("file over dir", unix.Rename(d+"/a", d+"/d3"))
	f.add("dir into itself", unix.Rename(d+"/d2", d+"/d2/sub"))
}

func checkLinks(f *facts, d string) {
	os.WriteFile(d+"/f", []byte("x"), 0o644)
	f.add("link", unix.Link(d+"/f", d+"/h"))
	var st unix.Stat_t
	unix.Stat(d+"/h", &st)
	f.add("nlink", st.Nlink)
	os.Remove(d + "/f")
	unix.Stat(d+"/h", &st)
	f.add("nlink after unlink", st.Nlink, readAll(d+"/h"))
	f.add("symlink", unix.Symlink("h", d+"/s"), readAll(d+"/s"))
	buf := make([]byte, 64)
	n, err := unix.Readlink(d+"/s", buf)
	f.add("readlink", string(buf[:max(n, 0)]), err)
	f.add("lstat mode", mode(d+"/s"))
	f.add("dangling", unix.Symlink("nowhere", d+"/dang"), readAll(d+"/dang"))
	os.Mkdir(d+"/dir", 0o755)
	f.add("link a dir", unix.Link(d+"/dir", d+"/dirlink"))
	f.add("link exists", unix.Link(d+"/h", d+"/s"))
}

// asUser runs fn with this thread's fsuid/fsgid set to uid, which is
// whose permissions the (host or guest) kernel then checks.
func asUser(uid int, fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Setfsgid(uid)
	unix.Setfsuid(uid)
	defer func() { unix.Setfsuid(0); unix.Setfsgid(0) }()
	fn()
}

func checkPermissions(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, []byte("secret"), 0o600)
	f.add("chmod 640", unix.Chmod(p, 0o640), mode(p))
	asUser(1000, func() {
		_, err := unix.Open(p, unix.O_RDONLY, 0)
		f.add("other user reads 0640", err)
		f.add("other user chmods", unix.Chmod(p, 0o666))
	})
	f.add("chown 1000:1000", unix.Chown(p, 1000, 1000))
	var st unix.Stat_t
	unix.Stat(p, &st)
	f.add("owner", st.Uid, st.Gid)
	asUser(1000, func() {
		fd, err := unix.Open(p, unix.O_RDONLY, 0)
		f.add("owner reads", err)
		unix.Close(fd)
		f.add("owner chowns to root", unix.Chown(p, 0, 0))
		f.add("owner makes setuid", unix.Chmod(p, 0o4755), mode(p))
		fd, err = unix.Open(p, unix.O_WRONLY, 0)
		unix.Write(fd, []byte("x"))
		unix.Close(fd)
		f.add("setuid after the owner writes", mode(p))
		f.add("mkdir in root's 0755 dir", unix.Mkdir(d+"/not-mine", 0o755))
	})
	os.Mkdir(d+"/sticky", 0o1777)
	os.WriteFile(d+"/sticky/roots", nil, 0o666)
	asUser(1000, func() {
		f.add("unlink root's file in sticky dir", unix.Unlink(d+"/sticky/roots"))
	})
	f.add("mkdir 0700", unix.Mkdir(d+"/m", 0o700), mode(d+"/m"))
	os.WriteFile(d+"/m/f", []byte("x"), 0o644)
	asUser(1000, func() {
		_, err := unix.Open(d+"/m/f", unix.O_RDONLY, 0)
		f.add("other user traverses 0700 dir", err)
	})
}

func checkTimes(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, []byte("x"), 0o644)
	ts := []unix.Timespec{{Sec: 1000000000, Nsec: 123456789}, {Sec: 1000000001, Nsec: 987654321}}
	f.add("utimensat", unix.UtimesNano(p, ts))
	var st unix.Stat_t
	unix.Stat(p, &st)
	f.add("atime mtime", st.Atim.Sec, st.Atim.Nsec, st.Mtim.Sec, st.Mtim.Nsec)
	before := st
	time.Sleep(20 * time.Millisecond) // clock distance, not synchronisation
	unix.Chmod(p, 0o600)
	unix.Stat(p, &st)
	f.add("chmod: ctime moves, mtime stays", st.Ctim != before.Ctim, st.Mtim == before.Mtim)
	before = st
	time.Sleep(20 * time.Millisecond)
	fd, _ := unix.Open(p, unix.O_WRONLY, 0)
	unix.Write(fd, []byte("y"))
	unix.Close(fd)
	unix.Stat(p, &st)
	f.add("write: mtime and ctime move", st.Mtim != before.Mtim, st.Ctim != before.Ctim)
	var dst, dst2 unix.Stat_t
	unix.Stat(d, &dst)
	time.Sleep(20 * time.Millisecond)
	os.WriteFile(d+"/new", nil, 0o644)
	unix.Stat(d, &dst2)
	f.add("create: parent mtime moves", dst2.Mtim != dst.Mtim)
}

// checkReaddir lists a directory the harness filled with 10 000 files
// before the run (dir "big" beside the checks), and a small one made here.
func checkReaddir(f *facts, d string) {
	for i := 0; i < 3; i++ {
		os.WriteFile(d+"/"+strconv.Itoa(i), nil, 0o644)
	}
	names, err := readNames(d)
	f.add("small", names, err)
	big, err := readNames(d + "/../big")
	sort.Strings(big)
	ok := len(big) == 10000
	for i, n := range big {
		if n != bigName(i) {
			ok = false
			break
		}
	}
	f.add("10000 entries", len(big), ok, err)
}

// bigName is the i-th name (in sorted order) of the 10 000-file directory.
func bigName(i int) string { return "file-" + leftPad(i) }

func leftPad(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 5 {
		s = "0" + s
	}
	return s
}

func readNames(dir string) ([]string, error) {
	fh, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	names, err := fh.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func checkFsync(f *facts, d string) {
	fd, _ := unix.Open(d+"/f", unix.O_CREAT|unix.O_RDWR, 0o644)
	unix.Write(fd, []byte("data"))
	f.add("fsync", unix.Fsync(fd))
	f.add("fdatasync", unix.Fdatasync(fd))
	unix.Close(fd)
	dfd, _ := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	f.add("fsync dir", unix.Fsync(dfd))
	unix.Close(dfd)
	f.add("syncfs", unix.Syncfs(dfd)) // closed: EBADF either way
}

func checkXattr(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, nil, 0o644)
	f.add("set", unix.Setxattr(p, "user.novm", []byte("v1"), 0))
	buf := make([]byte, 64)
	n, err := unix.Getxattr(p, "user.novm", buf)
	f.add("get", string(buf[:max(n, 0)]), err)
	n, err = unix.Getxattr(p, "user.novm", nil)
	f.add("get size", n, err)
	f.add("create existing", unix.Setxattr(p, "user.novm", []byte("v2"), unix.XATTR_CREATE))
	n, err = unix.Listxattr(p, buf)
	f.add("list", strconv.Quote(string(buf[:max(n, 0)])), err)
	f.add("remove", unix.Removexattr(p, "user.novm"))
	_, err = unix.Getxattr(p, "user.novm", buf)
	f.add("get removed", err)
	f.add("set on dir", unix.Setxattr(d, "user.dir", []byte("d"), 0))
}

func checkUnlinkOpen(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, []byte("still here"), 0o644)
	fd, _ := unix.Open(p, unix.O_RDWR, 0)
	f.add("unlink", unix.Unlink(p))
	buf := make([]byte, 32)
	n, err := unix.Pread(fd, buf, 0)
	f.add("read after unlink", string(buf[:max(n, 0)]), err)
	_, err = unix.Pwrite(fd, []byte("!"), 10)
	f.add("write after unlink", err)
	var st unix.Stat_t
	f.add("fstat", unix.Fstat(fd, &st), st.Nlink, st.Size)
	unix.Close(fd)
	f.add("gone", readAll(p))
}

func checkMmap(f *facts, d string) {
	p := d + "/f"
	os.WriteFile(p, []byte("mapped content.."), 0o644)
	fd, _ := unix.Open(p, unix.O_RDWR, 0)
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, 16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	f.add("mmap shared", err)
	if err != nil {
		return
	}
	f.add("read through map", string(m[:6]))
	copy(m, "MAPPED")
	f.add("msync", unix.Msync(m, unix.MS_SYNC))
	unix.Munmap(m)
	buf := make([]byte, 16)
	n, _ := unix.Pread(fd, buf, 0)
	f.add("read after shared write", string(buf[:n]))
}

func checkSpecial(f *facts, d string) {
	f.add("mkfifo", unix.Mkfifo(d+"/fifo", 0o644), mode(d+"/fifo"))
	f.add("mknod socket", unix.Mknod(d+"/sock", unix.S_IFSOCK|0o644, 0), mode(d+"/sock"))
	f.add("mkdir exists", unix.Mkdir(d+"/fifo", 0o755))
	os.MkdirAll(d+"/full/x", 0o755)
	f.add("rmdir non-empty", unix.Rmdir(d+"/full"))
	f.add("unlink dir", unix.Unlink(d))
}
