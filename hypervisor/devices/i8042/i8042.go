// Package i8042 models the one thing a microVM needs of the PC keyboard
// controller: the CPU reset line. Linux's `reboot=k` writes 0xfe to port
// 0x64; novm turns that into "the guest asked to stop".
package i8042

// The controller decodes ports Base..Base+Size-1 (data 0x60, command/status 0x64).
const (
	Base          = 0x60
	Size          = 5
	commandOffset = 4

	cmdResetCPU = 0xfe
)

// Controller is the reset-only keyboard controller.
type Controller struct {
	reset func()
}

// New returns a controller that calls reset when the guest pulses the CPU
// reset line.
func New(reset func()) *Controller { return &Controller{reset: reset} }

// Read returns an idle controller: no data, input buffer empty.
func (c *Controller) Read(offset uint64, data []byte) {
	for i := range data {
		data[i] = 0
	}
}

// Write acts on the reset command and ignores everything else.
func (c *Controller) Write(offset uint64, data []byte) {
	if offset == commandOffset && len(data) == 1 && data[0] == cmdResetCPU {
		c.reset()
	}
}
