package boot

import (
	"encoding/binary"
	"fmt"
)

// Offsets into struct boot_params (arch/x86/include/uapi/asm/bootparam.h).
const (
	zpExtRamdiskImage = 0x0c0
	zpExtRamdiskSize  = 0x0c4
	zpExtCmdLinePtr   = 0x0c8
	zpE820Entries     = 0x1e8
	zpSetupHeader     = 0x1f1
	zpBootFlag        = 0x1fe
	zpHeader          = 0x202
	zpVersion         = 0x206
	zpTypeOfLoader    = 0x210
	zpLoadFlags       = 0x211
	zpRamdiskImage    = 0x218
	zpRamdiskSize     = 0x21c
	zpCmdLinePtr      = 0x228
	zpKernelAlignment = 0x230
	zpCmdlineSize     = 0x238
	zpE820Table       = 0x2d0
	zpE820Max         = 128
	zpSize            = 4096
)

// WriteZeroPage fills struct boot_params for the Linux 64-bit boot
// protocol. setup is the bzImage's setup header (from offset 0x1f1) or nil
// for a bare vmlinux, in which case a minimal 2.12 header is made up.
func WriteZeroPage(mem Memory, setup []byte, e820 []E820Entry, cmdlineLen int, initrd Initrd) error {
	if len(e820) > zpE820Max {
		return fmt.Errorf("memory map has %d entries, at most %d fit", len(e820), zpE820Max)
	}
	b, err := mem.Slice(ZeroPageAddr, zpSize)
	if err != nil {
		return fmt.Errorf("zero page: %w", err)
	}
	clear(b)
	le := binary.LittleEndian
	if setup != nil {
		copy(b[zpSetupHeader:], setup)
	} else {
		le.PutUint16(b[zpBootFlag:], 0xaa55)
		le.PutUint32(b[zpHeader:], 0x53726448)
		le.PutUint16(b[zpVersion:], 0x020c)
		le.PutUint32(b[zpKernelAlignment:], 0x1000000)
	}
	b[zpTypeOfLoader] = 0xff // undefined loader
	b[zpLoadFlags] |= 0x01   // LOADED_HIGH
	le.PutUint32(b[zpCmdLinePtr:], CmdlineAddr)
	le.PutUint32(b[zpExtCmdLinePtr:], 0)
	le.PutUint32(b[zpCmdlineSize:], uint32(cmdlineLen))
	le.PutUint32(b[zpRamdiskImage:], uint32(initrd.Addr))
	le.PutUint32(b[zpRamdiskSize:], uint32(initrd.Size))
	le.PutUint32(b[zpExtRamdiskImage:], uint32(initrd.Addr>>32))
	le.PutUint32(b[zpExtRamdiskSize:], uint32(initrd.Size>>32))
	b[zpE820Entries] = uint8(len(e820))
	for i, e := range e820 {
		o := zpE820Table + 20*i
		le.PutUint64(b[o:], e.Addr)
		le.PutUint64(b[o+8:], e.Size)
		le.PutUint32(b[o+16:], e.Type)
	}
	return nil
}
