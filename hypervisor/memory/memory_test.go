package memory

import (
	"errors"
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
