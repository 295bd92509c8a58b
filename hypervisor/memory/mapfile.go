package memory

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// LoadFile puts length bytes of f, from offset off, into guest memory at
// addr. When addr and off are page-aligned the whole pages are mapped from
// the file (copy-on-write) instead of copied: the guest pages in from the
// host page cache on first touch, and VMs booting the same kernel share
// it. The tail that is not a whole page is copied. The destination must be
// fresh (zero) guest memory.
func (m *Memory) LoadFile(addr uint64, f *os.File, off int64, length uint64) error {
	dst, err := m.Slice(addr, length)
	if err != nil {
		return err
	}
	whole := uint64(0)
	if addr%pageSize == 0 && off%pageSize == 0 {
		whole = length &^ (pageSize - 1)
	}
	if whole > 0 {
		p := unsafe.Pointer(&dst[0])
		_, _, errno := unix.Syscall6(unix.SYS_MMAP, uintptr(p), uintptr(whole),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED, f.Fd(), uintptr(off))
		if errno != 0 {
			return fmt.Errorf("map %s into guest memory at %#x: %w", f.Name(), addr, errno)
		}
	}
	if _, err := f.ReadAt(dst[whole:], off+int64(whole)); err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return nil
}

// ResidentBytes is the guest memory resident in this process: the Rss of
// the mappings inside guest RAM, from /proc/self/smaps. Used to tell the
// guest's memory apart from the VMM's own overhead.
func (m *Memory) ResidentBytes() (uint64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total uint64
	inGuest := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if start, end, ok := parseRange(line); ok {
			inGuest = m.containsHost(start, end)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && inGuest {
			kb, _ := strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			total += kb << 10
		}
	}
	return total, sc.Err()
}

// parseRange recognises an smaps mapping header "start-end perms ...".
func parseRange(line string) (uint64, uint64, bool) {
	r, _, ok := strings.Cut(line, " ")
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(r, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseUint(a, 16, 64)
	end, err2 := strconv.ParseUint(b, 16, 64)
	return start, end, err1 == nil && err2 == nil
}

func (m *Memory) containsHost(start, end uint64) bool {
	for _, r := range m.regions {
		base := uint64(r.HostAddr())
		if start >= base && end <= base+uint64(len(r.Host)) {
			return true
		}
	}
	return false
}
