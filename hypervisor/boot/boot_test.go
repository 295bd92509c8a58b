package boot

import (
	"encoding/binary"
	"testing"

	"github.com/novm/novm/hypervisor/memory"
)

func newMem(t *testing.T) *memory.Memory {
	m, err := memory.New(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestE820(t *testing.T) {
	got := E820([]RAMRange{{0, 64 << 20}})
	want := []E820Entry{
		{0, 0x9fc00, E820RAM},
		{0x9fc00, 0x400, E820Reserved},
		{0x100000, 63 << 20, E820RAM},
	}
	if len(got) != len(want) {
		t.Fatalf("E820 = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	high := E820([]RAMRange{{0, memory.MMIOHoleStart}, {memory.MMIOHoleEnd, memory.MMIOHoleEnd + 1<<30}})
	if last := high[len(high)-1]; last != (E820Entry{memory.MMIOHoleEnd, 1 << 30, E820RAM}) {
		t.Fatalf("high RAM entry = %+v", last)
	}
}

// hvm_start_info as the Xen header lays it out: magic, version, flags,
// nr_modules, modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr,
// memmap_entries; modlist and memmap entries follow.
func TestPVHStartInfoLayout(t *testing.T) {
	mem := newMem(t)
	e820 := E820([]RAMRange{{0, 64 << 20}})
	if err := WritePVHStartInfo(mem, e820, Initrd{Addr: 0x3000000, Size: 0x1234}); err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Slice(StartInfoAddr, 0x200)
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0x336ec578 || le.Uint32(b[4:]) != 1 || le.Uint32(b[12:]) != 1 {
		t.Fatalf("header % x", b[:16])
	}
	if le.Uint64(b[24:]) != CmdlineAddr || le.Uint64(b[32:]) != 0 || le.Uint32(b[48:]) != 3 {
		t.Fatalf("cmdline/rsdp/entries wrong: % x", b[24:56])
	}
	mm := le.Uint64(b[40:]) - StartInfoAddr
	if mm%8 != 0 {
		t.Fatalf("memmap at %#x not 8-aligned", mm)
	}
	for i, e := range e820 {
		o := mm + uint64(i)*24
		if le.Uint64(b[o:]) != e.Addr || le.Uint64(b[o+8:]) != e.Size || le.Uint32(b[o+16:]) != e.Type {
			t.Fatalf("memmap %d = % x", i, b[o:o+24])
		}
	}
	mod := le.Uint64(b[16:]) - StartInfoAddr
	if le.Uint64(b[mod:]) != 0x3000000 || le.Uint64(b[mod+8:]) != 0x1234 {
		t.Fatalf("modlist = % x", b[mod:mod+32])
	}
}

// Offsets from Documentation/x86/zero-page.rst and boot.rst.
func TestZeroPageLayout(t *testing.T) {
	mem := newMem(t)
	e820 := E820([]RAMRange{{0, 64 << 20}})
	if err := WriteZeroPage(mem, nil, e820, 42, Initrd{Addr: 0x3000000, Size: 0x1234}); err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Slice(ZeroPageAddr, 4096)
	le := binary.LittleEndian
	for _, c := range []struct {
		name      string
		off, size int
		want      uint64
	}{
		{"e820_entries", 0x1e8, 1, 3},
		{"boot_flag", 0x1fe, 2, 0xaa55},
		{"header", 0x202, 4, 0x53726448},
		{"type_of_loader", 0x210, 1, 0xff},
		{"loadflags", 0x211, 1, 1},
		{"ramdisk_image", 0x218, 4, 0x3000000},
		{"ramdisk_size", 0x21c, 4, 0x1234},
		{"cmd_line_ptr", 0x228, 4, CmdlineAddr},
		{"cmdline_size", 0x238, 4, 42},
		{"e820[1].addr", 0x2d0 + 20, 8, 0x9fc00},
		{"e820[2].type", 0x2d0 + 40 + 16, 4, E820RAM},
	} {
		var got uint64
		switch c.size {
		case 1:
			got = uint64(b[c.off])
		case 2:
			got = uint64(le.Uint16(b[c.off:]))
		case 4:
			got = uint64(le.Uint32(b[c.off:]))
		case 8:
			got = le.Uint64(b[c.off:])
		}
		if got != c.want {
			t.Errorf("%s at %#x = %#x, want %#x", c.name, c.off, got, c.want)
		}
	}
}

func sum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

func TestMPTable(t *testing.T) {
	mem := newMem(t)
	const cpus = 2
	if err := WriteMPTable(mem, cpus); err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Slice(MPTableAddr, uint64(MPTableSize(cpus)))
	le := binary.LittleEndian
	if string(b[:4]) != "_MP_" || le.Uint32(b[4:]) != MPTableAddr+16 || b[8] != 1 || b[9] != 4 || sum(b[:16]) != 0 {
		t.Fatalf("floating pointer % x", b[:16])
	}
	mpc := b[16:]
	length := int(le.Uint16(mpc[4:]))
	if string(mpc[:4]) != "PCMP" || length != len(mpc) || sum(mpc[:length]) != 0 {
		t.Fatalf("config header % x (length %d, sum %d)", mpc[:44], length, sum(mpc[:length]))
	}
	if le.Uint32(mpc[36:]) != LAPICAddr {
		t.Fatal("LAPIC address")
	}
	entries := mpc[44:]
	count := int(le.Uint16(mpc[34:]))
	if count != cpus+2+IOAPICPins+2 {
		t.Fatalf("entry count %d", count)
	}
	for i := 0; i < cpus; i++ {
		e := entries[i*20:]
		wantFlags := byte(1)
		if i == 0 {
			wantFlags = 3
		}
		if e[0] != 0 || e[1] != byte(i) || e[3] != wantFlags {
			t.Fatalf("processor entry %d = % x", i, e[:20])
		}
	}
	rest := entries[cpus*20:]
	if rest[0] != 1 || string(rest[2:8]) != "ISA   " {
		t.Fatalf("bus entry % x", rest[:8])
	}
	if rest[8] != 2 || rest[9] != cpus || le.Uint32(rest[12:]) != IOAPICAddr {
		t.Fatalf("IOAPIC entry % x", rest[8:16])
	}
	for irq := 0; irq < IOAPICPins; irq++ {
		e := rest[16+8*irq:]
		if e[0] != 3 || e[5] != byte(irq) || e[6] != cpus || e[7] != byte(irq) {
			t.Fatalf("IO interrupt %d = % x", irq, e[:8])
		}
	}
	if err := WriteMPTable(mem, 0); err == nil {
		t.Fatal("0 CPUs accepted")
	}
}

func TestCmdlineTooLong(t *testing.T) {
	mem := newMem(t)
	if err := WriteCmdline(mem, string(make([]byte, CmdlineMax))); err == nil {
		t.Fatal("oversized command line accepted")
	}
	if err := WriteCmdline(mem, "console=ttyS0"); err != nil {
		t.Fatal(err)
	}
	b, _ := mem.Slice(CmdlineAddr, 14)
	if string(b) != "console=ttyS0\x00" {
		t.Fatalf("cmdline = %q", b)
	}
}

func TestGDTSegments(t *testing.T) {
	cs := segment(gdtCode32, selCode)
	if cs.Base != 0 || cs.Limit != 0xffffffff || cs.Type != 0xb || cs.DB != 1 || cs.L != 0 || cs.G != 1 || cs.Present != 1 || cs.S != 1 {
		t.Fatalf("code32 = %+v", cs)
	}
	cs64 := segment(gdtCode64, selCode)
	if cs64.L != 1 || cs64.DB != 0 {
		t.Fatalf("code64 = %+v", cs64)
	}
	tr := segment(gdtTSS, selTSS)
	if tr.Type != 0xb || tr.S != 0 || tr.Limit != 0x67 {
		t.Fatalf("tss = %+v", tr)
	}
}
