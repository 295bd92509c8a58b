package serial

import (
	"bytes"
	"testing"
)

type countIRQ struct{ n int }

func (c *countIRQ) Trigger() error { c.n++; return nil }

func read(u *UART, off uint64) byte {
	b := []byte{0}
	u.Read(off, b)
	return b[0]
}

// The 8250 driver's autoconfig probe: scratch register, loopback MSR, and
// an IIR with FIFOs enabled identify a 16550A.
func TestProbeLooksLike16550A(t *testing.T) {
	u := New(nil, nil)
	u.Write(regSCR, []byte{0xa5})
	if read(u, regSCR) != 0xa5 {
		t.Fatal("scratch register does not hold its value")
	}
	u.Write(regMCR, []byte{mcrLoop | 0x0a})
	if got := read(u, regMSR) & 0xf0; got != 0x90 {
		t.Fatalf("loopback MSR = %#x, want 0x90", got)
	}
	u.Write(regMCR, []byte{0})
	if got := read(u, regIIR) & 0xc0; got != 0xc0 {
		t.Fatalf("IIR FIFO bits = %#x, want 0xc0", got)
	}
	u.Write(regLCR, []byte{lcrDLAB})
	u.Write(regData, []byte{1})
	u.Write(regIER, []byte{2})
	if read(u, regData) != 1 || read(u, regIER) != 2 {
		t.Fatal("divisor latch does not hold its value")
	}
}

func TestOutputAndTHREInterrupt(t *testing.T) {
	var out bytes.Buffer
	irq := &countIRQ{}
	u := New(&out, irq)
	u.Write(regIER, []byte{ierTHRI})
	if irq.n != 1 {
		t.Fatalf("enabling THRI raised %d interrupts, want 1", irq.n)
	}
	if read(u, regIIR)&0x0f != iirTHRI {
		t.Fatal("IIR does not report THR empty")
	}
	if read(u, regIIR)&0x0f != iirNoInt {
		t.Fatal("reading IIR did not acknowledge THR empty")
	}
	for _, c := range []byte("hi") {
		u.Write(regData, []byte{c})
	}
	if out.String() != "hi" || irq.n != 3 {
		t.Fatalf("out=%q irqs=%d", out.String(), irq.n)
	}
	if read(u, regLSR)&(lsrTHRE|lsrTEMT) != lsrTHRE|lsrTEMT {
		t.Fatal("LSR does not report transmitter empty")
	}
}

func TestInput(t *testing.T) {
	irq := &countIRQ{}
	u := New(nil, irq)
	u.Write(regIER, []byte{ierRDI})
	u.Input([]byte("ab"))
	if irq.n != 1 || read(u, regLSR)&lsrDR == 0 || read(u, regIIR)&0x0f != iirRDI {
		t.Fatal("input not signalled")
	}
	if read(u, regData) != 'a' || read(u, regData) != 'b' || read(u, regLSR)&lsrDR != 0 {
		t.Fatal("input not delivered in order")
	}
}
