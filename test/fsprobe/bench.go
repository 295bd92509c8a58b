package main

// The in-guest file-system benchmark: sequential write and read of one
// large file and a metadata storm, timed by the guest's clock, printed as
// "bench NAME VALUE UNIT" lines for the harness to compare between VMMs.

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func runBench(dir string, mib, files int) error {
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	path := dir + "/seq"
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for i := 0; i < mib; i++ {
		if _, err := f.Write(chunk); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	f.Close()
	report("seq-write", float64(mib)/time.Since(start).Seconds(), "MiB/s")

	// Read from the file system, not the guest's page cache.
	unix.Sync()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	start = time.Now()
	f, err = os.Open(path)
	if err != nil {
		return err
	}
	total := 0
	for {
		n, err := f.Read(chunk)
		total += n
		if err != nil || n == 0 {
			break
		}
	}
	f.Close()
	if total != mib<<20 {
		return fmt.Errorf("read back %d bytes, wrote %d", total, mib<<20)
	}
	report("seq-read", float64(mib)/time.Since(start).Seconds(), "MiB/s")
	os.Remove(path)

	// Metadata: create, stat and unlink each file.
	start = time.Now()
	var st unix.Stat_t
	for i := 0; i < files; i++ {
		p := dir + "/m" + strconv.Itoa(i)
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	for i := 0; i < files; i++ {
		if err := unix.Stat(dir+"/m"+strconv.Itoa(i), &st); err != nil {
			return err
		}
	}
	for i := 0; i < files; i++ {
		if err := unix.Unlink(dir + "/m" + strconv.Itoa(i)); err != nil {
			return err
		}
	}
	report("metadata", float64(3*files)/time.Since(start).Seconds(), "ops/s")
	return nil
}

func report(name string, v float64, unit string) {
	fmt.Printf("bench %s %.3f %s\n", name, v, unit)
}
