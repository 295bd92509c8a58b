package memory

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLayoutAroundHole(t *testing.T) {
	m, err := New(MMIOHoleStart + 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rs := m.Regions()
	if len(rs) != 2 || rs[0].GuestAddr != 0 || rs[0].End() != MMIOHoleStart || rs[1].GuestAddr != MMIOHoleEnd || len(rs[1].Host) != 1<<20 {
		t.Fatalf("regions = %+v", rs)
	}
	if m.LowEnd() != MMIOHoleStart {
		t.Fatalf("LowEnd = %#x", m.LowEnd())
	}
}

func TestSliceBounds(t *testing.T) {
	m, err := New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, c := range []struct {
		addr, n uint64
		ok      bool
	}{
		{0, 1 << 20, true},
		{1<<20 - 1, 1, true},
		{1 << 20, 1, false},
		{1<<20 - 1, 2, false},
		{^uint64(0), 2, false}, // overflow
		{1 << 40, 0, false},
	} {
		_, err := m.Slice(c.addr, c.n)
		if (err == nil) != c.ok {
			t.Errorf("Slice(%#x, %#x) err = %v, want ok=%v", c.addr, c.n, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Slice(%#x, %#x) err = %v, not ErrOutOfRange", c.addr, c.n, err)
		}
	}
	if err := m.Write(100, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	if err := m.Read(100, b); err != nil || string(b) != "abc" {
		t.Fatalf("Read = %q, %v", b, err)
	}
}

func TestResidentBytesCountsTouchedPages(t *testing.T) {
	m, err := New(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	before, err := m.ResidentBytes()
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 10; i++ {
		m.Write(i*4096*3, []byte{1})
	}
	after, _ := m.ResidentBytes()
	if after-before != 10*4096 {
		t.Fatalf("resident grew by %d, want %d", after-before, 10*4096)
	}
}

func TestLoadFileMapsWholePagesAndCopiesTail(t *testing.T) {
	m, err := New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data := make([]byte, 3*4096+10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, append(data, "trailing"...), 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	for _, addr := range []uint64{0x10000, 0x20001} { // mapped, copied
		if err := m.LoadFile(addr, f, 0, uint64(len(data))); err != nil {
			t.Fatal(err)
		}
		got, _ := m.Slice(addr, uint64(len(data))+8)
		if !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], make([]byte, 8)) {
			t.Fatalf("at %#x: contents differ or tail not zero", addr)
		}
	}
	// Guest writes stay private to the guest.
	m.Write(0x10000, []byte{0xff})
	onDisk, _ := os.ReadFile(p)
	if onDisk[0] != data[0] {
		t.Fatal("guest write reached the file")
	}
	if err := m.LoadFile(1<<20-10, f, 0, 100); err == nil {
		t.Fatal("load past the end of RAM accepted")
	}
}
