package virtiofs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// request is a prebuilt FUSE request, so a benchmark times the server and
// not the building of its input.
func request(op uint32, node uint64, body []byte) []byte {
	req := make([]byte, inHeaderSize+len(body))
	le.PutUint32(req[0:], uint32(len(req)))
	le.PutUint32(req[4:], op)
	le.PutUint64(req[8:], 1)
	le.PutUint64(req[16:], node)
	copy(req[inHeaderSize:], body)
	return req
}

// BenchmarkRequestCost times each request through the server against the
// system calls it stands for, side by side, and prints the ratios (goal:
// at most 1.5x).
func BenchmarkRequestCost(b *testing.B) {
	c, dir := newShare(b, Options{})
	data := make([]byte, 4096)
	os.WriteFile(filepath.Join(dir, "data"), data, 0o644)
	os.Mkdir(filepath.Join(dir, "list"), 0o755)
	for i := 0; i < 16; i++ {
		os.WriteFile(filepath.Join(dir, "list", fmt.Sprint("entry", i)), nil, 0o644)
	}
	id, _ := c.lookup(c.root, "data")
	listID, _ := c.lookup(c.root, "list")
	open := make([]byte, 8)
	le.PutUint32(open, unix.O_RDWR)
	_, openOut := c.call(opOpen, id, open)
	fh := le.Uint64(openOut)

	rawDir, _ := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	rawFile, _ := unix.Open(filepath.Join(dir, "data"), unix.O_RDWR, 0)
	defer unix.Close(rawDir)
	defer unix.Close(rawFile)
	buf := make([]byte, 4096)
	var st unix.Stat_t

	rw := func(fh uint64, op uint32) []byte {
		body := make([]byte, 40)
		le.PutUint64(body[0:], fh)
		le.PutUint32(body[16:], 4096)
		if op == opWrite {
			body = append(body, data...)
		}
		return request(op, id, body)
	}
	// The guest's reply buffers as Linux lays them out: the out header in
	// its own descriptor, the payload in page-aligned pages.
	out := make([]byte, 1<<17)
	replyBufs := [][]byte{out[:outHeaderSize], out[4096:]}
	handle := func(req []byte) []byte {
		if c.s.Handle(req, replyBufs) < outHeaderSize || le.Uint32(out[4:]) != 0 {
			b.Fatalf("request %d failed: errno %d", le.Uint32(req[4:]), int32(le.Uint32(out[4:])))
		}
		return out[4096:]
	}
	opendir := request(opOpendir, listID, make([]byte, 8))
	readdir := make([]byte, 40)
	le.PutUint32(readdir[16:], 1<<16)
	releasedir := make([]byte, 24)
	// A directory listing: OPENDIR, READDIRPLUS of everything, RELEASEDIR.
	listing := func() {
		fh := le.Uint64(handle(opendir))
		le.PutUint64(readdir, fh)
		handle(request(opReaddirplus, listID, readdir))
		le.PutUint64(releasedir, fh)
		handle(request(opReleasedir, listID, releasedir))
	}

	cases := []struct {
		name string
		req  []byte
		raw  func()
	}{
		{"LOOKUP", request(opLookup, c.root, name("data")), func() {
			fd, _ := openBeneath(rawDir, "data")
			fstat(fd)
			unix.Close(fd)
		}},
		{"GETATTR", request(opGetattr, id, make([]byte, 16)), func() { unix.Fstatat(rawFile, "", &st, unix.AT_EMPTY_PATH) }},
		{"READ 4KiB", rw(fh, opRead), func() { unix.Pread(rawFile, buf, 0) }},
		{"WRITE 4KiB", rw(fh, opWrite), func() { unix.Pwrite(rawFile, data, 0) }},
		{"READDIRPLUS 16", nil, func() {
			fd, _ := unix.Openat(rawDir, "list", unix.O_RDONLY|unix.O_DIRECTORY, 0)
			names, _ := readDir(fd)
			unix.Close(fd)
			ldir, _ := openBeneath(rawDir, "list")
			for _, e := range names[2:] {
				f, _ := openBeneath(ldir, e.name)
				fstat(f)
				unix.Close(f)
			}
			unix.Close(ldir)
		}},
	}
	// Sub-benchmarks, each run to its final b.N; the last run's time per
	// operation is kept to compute the ratio.
	for _, tc := range cases {
		var server, raw float64
		b.Run(tc.name+"/server", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if tc.req == nil {
					listing()
				} else {
					handle(tc.req)
				}
			}
			server = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(tc.name+"/syscalls", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				tc.raw()
			}
			raw = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		fmt.Printf("virtio-fs %-15s server %7.0f ns  raw syscalls %7.0f ns  ratio %.2fx\n", tc.name, server, raw, server/raw)
	}
}
