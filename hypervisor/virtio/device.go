// Package virtio holds what every virtio device shares regardless of
// transport: the split virtqueue, feature bits, and the Device interface a
// transport (hypervisor/virtio/mmio) drives. Device models live in one
// folder each beside it.
package virtio

// Device IDs (virtio 1.2 §5).
const (
	IDNet     = 1
	IDBlock   = 2
	IDConsole = 3
	IDRNG     = 4
	IDVsock   = 19
	IDFS      = 26
)

// Transport-independent feature bits.
const (
	FeatureIndirectDesc = 1 << 28
	FeatureEventIdx     = 1 << 29
	FeatureVersion1     = 1 << 32
	FeatureAccessPlat   = 1 << 33
)

// Interrupt lets a device tell the driver it used buffers.
type Interrupt interface {
	// UsedBuffers signals that a used ring changed.
	UsedBuffers()
}

// Device is a virtio device model as a transport sees it. Queue indices
// are the device's own; the transport owns the register layout.
type Device interface {
	// Type is the virtio device ID.
	Type() uint32
	// Features are the device feature bits offered (VERSION_1 is added by
	// the transport).
	Features() uint64
	// QueueMaxSizes gives, per queue, the largest size the device accepts.
	QueueMaxSizes() []uint16
	// ReadConfig and WriteConfig access the device-specific config space.
	ReadConfig(offset uint64, data []byte)
	WriteConfig(offset uint64, data []byte)
	// Activate starts the device once the driver set DRIVER_OK. queues
	// holds the configured queues (nil for ones the driver did not enable).
	Activate(mem Memory, features uint64, queues []*Queue, irq Interrupt) error
	// QueueNotify is called when the driver kicks queue index.
	QueueNotify(index int)
	// Reset stops the device and drops its queues (driver wrote status 0).
	Reset()
}
