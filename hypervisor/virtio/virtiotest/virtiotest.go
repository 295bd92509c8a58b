// Package virtiotest holds what tests of virtio devices share: guest RAM
// as one flat byte slice.
package virtiotest

import "fmt"

// FlatMem is guest RAM starting at guest address 0.
type FlatMem []byte

// Slice implements virtio.Memory with the same bounds rules as the real
// guest memory.
func (m FlatMem) Slice(addr, n uint64) ([]byte, error) {
	if addr+n < addr || addr+n > uint64(len(m)) {
		return nil, fmt.Errorf("out of range %#x+%#x", addr, n)
	}
	return m[addr : addr+n : addr+n], nil
}
