// Package serial emulates a 16550A UART: the guest kernel's console.
//
// Only what Linux's 8250 driver uses is modelled: the register file, the
// divisor latch, loopback for the driver's probe, and the THR-empty and
// received-data interrupts. Output goes to a writer as it is written; input
// is queued by the host with Input.
package serial

import (
	"io"
	"sync"
)

// Register offsets from the base port.
const (
	regData = 0 // RBR (read) / THR (write); DLL with DLAB
	regIER  = 1 // DLM with DLAB
	regIIR  = 2 // IIR (read) / FCR (write)
	regLCR  = 3
	regMCR  = 4
	regLSR  = 5
	regMSR  = 6
	regSCR  = 7

	// Ports is the number of I/O ports the UART decodes.
	Ports = 8
)

// Register bits.
const (
	ierRDI  = 0x01 // received data available
	ierTHRI = 0x02 // transmitter holding register empty

	iirNoInt = 0x01
	iirTHRI  = 0x02
	iirRDI   = 0x04
	iirFIFO  = 0xc0

	lcrDLAB = 0x80

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10

	lsrDR   = 0x01
	lsrTHRE = 0x20
	lsrTEMT = 0x40

	msrCTS = 0x10
	msrDSR = 0x20
	msrRI  = 0x40
	msrDCD = 0x80

	maxInput = 4096
)

// Interrupt is the UART's interrupt line (edge-triggered ISA IRQ).
type Interrupt interface {
	Trigger() error
}

// UART is one 16550A.
type UART struct {
	mu   sync.Mutex
	out  io.Writer
	irq  Interrupt
	in   []byte
	dll  uint8
	dlm  uint8
	ier  uint8
	lcr  uint8
	mcr  uint8
	scr  uint8
	thri bool // THR-empty interrupt pending (cleared by reading IIR or writing THR)
}

// New returns a UART writing guest output to out (may be nil).
func New(out io.Writer, irq Interrupt) *UART {
	if out == nil {
		out = io.Discard
	}
	// Divisor 12 = 9600 baud, the reset value Linux expects to find.
	return &UART{out: out, irq: irq, dll: 12, mcr: mcrOUT2}
}

// Read handles a guest IN from base+offset.
func (u *UART) Read(offset uint64, data []byte) {
	if len(data) != 1 {
		for i := range data {
			data[i] = 0xff
		}
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var v uint8
	switch offset {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			v = u.dll
		} else if len(u.in) > 0 {
			v = u.in[0]
			u.in = u.in[1:]
		}
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			v = u.dlm
		} else {
			v = u.ier
		}
	case regIIR:
		v = u.iir() | iirFIFO
		if v&0x0f == iirTHRI {
			u.thri = false // reading IIR acknowledges THR-empty
		}
	case regLCR:
		v = u.lcr
	case regMCR:
		v = u.mcr
	case regLSR:
		v = lsrTHRE | lsrTEMT
		if len(u.in) > 0 {
			v |= lsrDR
		}
	case regMSR:
		if u.mcr&mcrLoop != 0 {
			// Loopback: modem outputs appear on the inputs (the 8250
			// driver's probe checks this).
			if u.mcr&mcrDTR != 0 {
				v |= msrDSR
			}
			if u.mcr&mcrRTS != 0 {
				v |= msrCTS
			}
			if u.mcr&mcrOUT1 != 0 {
				v |= msrRI
			}
			if u.mcr&mcrOUT2 != 0 {
				v |= msrDCD
			}
		} else {
			v = msrDCD | msrDSR | msrCTS
		}
	case regSCR:
		v = u.scr
	}
	data[0] = v
}

// Write handles a guest OUT to base+offset.
func (u *UART) Write(offset uint64, data []byte) {
	if len(data) != 1 {
		return
	}
	v := data[0]
	u.mu.Lock()
	raise := false
	switch offset {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			u.dll = v
			break
		}
		if u.mcr&mcrLoop != 0 {
			if len(u.in) < maxInput {
				u.in = append(u.in, v)
			}
			raise = u.ier&ierRDI != 0
		} else {
			u.mu.Unlock()
			u.out.Write([]byte{v})
			u.mu.Lock()
		}
		// The byte left at once: THR is empty again.
		u.thri = true
		raise = raise || u.ier&ierTHRI != 0
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			u.dlm = v
			break
		}
		was := u.ier
		u.ier = v & 0x0f
		// Enabling THRI while THR is empty raises the interrupt at once.
		if u.ier&ierTHRI != 0 && was&ierTHRI == 0 {
			u.thri = true
			raise = true
		}
		if u.ier&ierRDI != 0 && len(u.in) > 0 {
			raise = true
		}
	case regIIR: // FCR: FIFOs always on, nothing to model
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1f
	case regSCR:
		u.scr = v
	}
	u.mu.Unlock()
	if raise && u.irq != nil {
		u.irq.Trigger()
	}
}

// iir computes the interrupt identification, highest priority first.
func (u *UART) iir() uint8 {
	switch {
	case u.ier&ierRDI != 0 && len(u.in) > 0:
		return iirRDI
	case u.ier&ierTHRI != 0 && u.thri:
		return iirTHRI
	}
	return iirNoInt
}

// Input queues bytes for the guest to read (up to an internal bound; the
// rest is dropped, as a real UART overruns).
func (u *UART) Input(b []byte) {
	u.mu.Lock()
	room := maxInput - len(u.in)
	u.in = append(u.in, b[:min(room, len(b))]...)
	raise := u.ier&ierRDI != 0 && len(u.in) > 0
	u.mu.Unlock()
	if raise && u.irq != nil {
		u.irq.Trigger()
	}
}
