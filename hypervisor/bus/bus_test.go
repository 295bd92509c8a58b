package bus

import "testing"

type rec struct{ lastOff uint64 }

func (r *rec) Read(off uint64, d []byte)  { r.lastOff = off; d[0] = 7 }
func (r *rec) Write(off uint64, d []byte) { r.lastOff = off }

func TestDispatchAndOverlap(t *testing.T) {
	var b Bus
	a, c := &rec{}, &rec{}
	if err := b.Register(0x3f8, 8, a); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(0x60, 5, c); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(0x3fc, 8, c); err == nil {
		t.Fatal("overlapping range accepted")
	}
	d := []byte{0}
	if !b.Read(0x3fd, d) || d[0] != 7 || a.lastOff != 5 {
		t.Fatalf("read dispatched wrong: d=%v off=%d", d, a.lastOff)
	}
	if !b.Write(0x64, d) || c.lastOff != 4 {
		t.Fatalf("write dispatched wrong: off=%d", c.lastOff)
	}
	if b.Read(0x400, d) || d[0] != 0xff {
		t.Fatal("unclaimed read should return all ones")
	}
	b.Unregister(0x3f8)
	if b.Read(0x3f8, d) {
		t.Fatal("unregistered device still answers")
	}
}
