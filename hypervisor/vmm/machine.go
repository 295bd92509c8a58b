package vmm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/novm/novm/hypervisor/boot"
	"github.com/novm/novm/hypervisor/bus"
	"github.com/novm/novm/hypervisor/devices/i8042"
	"github.com/novm/novm/hypervisor/devices/serial"
	"github.com/novm/novm/hypervisor/kvm"
	"github.com/novm/novm/hypervisor/loader"
	"github.com/novm/novm/hypervisor/memory"
	"github.com/novm/novm/hypervisor/virtio"
	"github.com/novm/novm/hypervisor/virtio/console"
	"github.com/novm/novm/hypervisor/virtio/fs"
	"github.com/novm/novm/hypervisor/virtio/mmio"
	"github.com/novm/novm/hypervisor/virtio/vsock"
	"github.com/novm/novm/virtiofs"
)

// Fixed platform layout: legacy ports, IRQs, and the virtio-mmio windows.
const (
	serialPort = 0x3f8
	serialIRQ  = 4
	mmioBase   = 0xd000_0000
	// virtio devices take IOAPIC pins from firstVirtioIRQ up.
	firstVirtioIRQ = 5
)

// Machine is a microVM ready to run, running, or stopped.
type Machine struct {
	cfg  Config
	sys  *kvm.System
	vm   *kvm.VM
	mem  *memory.Memory
	pio  bus.Bus
	mmio bus.Bus

	vcpus      []*vcpu
	irqs       []*irqLine
	transports []*mmio.Transport
	serial     *serial.UART
	console    *console.Device
	vsock      *vsock.Device
	fs         *virtiofs.Server
	tail       *tailBuffer
	cmdline    string

	startOnce sync.Once
	stopOnce  sync.Once
	stopping  chan struct{}
	exitMu    sync.Mutex
	exit      Exit
	vcpuWait  sync.WaitGroup
	done      chan struct{}
	firstRun  chan time.Time
	closeOnce sync.Once
	pause     pauseState
}

// New builds the VM described by cfg, up to the point where KVM_RUN would
// execute the first guest instruction. On error everything created so far
// is released.
func New(cfg Config) (_ *Machine, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, stopping: make(chan struct{}), done: make(chan struct{}), firstRun: make(chan time.Time, 1), tail: newTailBuffer(4096)}
	m.pause.cond = sync.NewCond(&m.pause.mu)
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.sys, err = kvm.Open(cfg.Device); err != nil {
		return nil, err
	}
	for _, c := range kvm.KnownCaps {
		if c.Required && m.sys.CheckExtension(c.Cap) == 0 {
			return nil, fmt.Errorf("%s lacks KVM_CAP_%s, which novm needs", cfg.Device, c.Name)
		}
	}
	if m.vm, err = m.sys.CreateVM(); err != nil {
		return nil, err
	}
	if max := m.vm.CheckExtension(kvm.CapMaxVCPUs); max > 0 && cfg.CPUs > max {
		return nil, fmt.Errorf("--cpus %d: this KVM allows at most %d vCPUs per VM", cfg.CPUs, max)
	}
	if err := m.setupPlatform(); err != nil {
		return nil, err
	}
	if err := m.setupMemory(); err != nil {
		return nil, err
	}
	if err := m.setupDevices(); err != nil {
		return nil, err
	}
	if err := m.loadGuest(); err != nil {
		return nil, err
	}
	return m, nil
}

// setupPlatform creates what must exist before vCPUs: the VMX helper
// pages, the in-kernel interrupt controllers and the PIT.
func (m *Machine) setupPlatform() error {
	if m.sys.CheckExtension(kvm.CapSetTSSAddr) != 0 {
		if err := m.vm.SetTSSAddr(boot.KVMTSSAddr); err != nil {
			return err
		}
	}
	if m.sys.CheckExtension(kvm.CapSetIdentityMap) != 0 {
		if err := m.vm.SetIdentityMapAddr(boot.KVMIdentityAddr); err != nil {
			return err
		}
	}
	if err := m.vm.CreateIRQChip(); err != nil {
		return err
	}
	return m.vm.CreatePIT2()
}

func (m *Machine) setupMemory() error {
	var err error
	if m.mem, err = memory.New(uint64(m.cfg.MemoryMiB) << 20); err != nil {
		return err
	}
	for i, r := range m.mem.Regions() {
		if err := m.vm.SetUserMemoryRegion(uint32(i), r.GuestAddr, uint64(len(r.Host)), r.HostAddr()); err != nil {
			return err
		}
	}
	return nil
}

func (m *Machine) setupDevices() error {
	useIRQFD := m.sys.CheckExtension(kvm.CapIRQFD) != 0
	serialOut := m.tail.writer(m.cfg.SerialOut)
	serialLine := newIRQLine(m.vm, serialIRQ, useIRQFD)
	m.irqs = append(m.irqs, serialLine)
	m.serial = serial.New(serialOut, serialLine)
	if err := m.pio.Register(serialPort, serial.Ports, m.serial); err != nil {
		return err
	}
	if err := m.pio.Register(i8042.Base, i8042.Size, i8042.New(func() { m.finish(Exit{Reason: ExitReset}) })); err != nil {
		return err
	}
	m.console = console.New(m.cfg.AgentOut, m.cfg.Log.WithField("device", "virtio-console"))
	if err := m.addVirtio(m.console, useIRQFD); err != nil {
		return err
	}
	cid := m.cfg.GuestCID
	if cid == 0 {
		cid = vsock.DefaultGuestCID
	}
	m.vsock = vsock.New(cid, m.cfg.Log.WithField("device", "virtio-vsock"))
	if err := m.addVirtio(m.vsock, useIRQFD); err != nil {
		return err
	}
	// One virtio-fs device carries every share, present even with none
	// so shares can be added while the guest runs.
	m.fs = virtiofs.New(virtiofs.Config{})
	for _, sh := range m.cfg.Shares {
		if err := m.AddShare(sh); err != nil {
			return err
		}
	}
	dev, err := fs.New(FSTag, m.fs, m.cfg.Log.WithField("device", "virtio-fs"))
	if err != nil {
		return err
	}
	return m.addVirtio(dev, useIRQFD)
}

// AddShare exports a host directory or file to the guest, at any time; the
// guest finds it as sh.Name in the root of the FSTag mount.
func (m *Machine) AddShare(sh Share) error {
	return m.fs.AddShare(sh.Name, sh.Path, sh.options())
}

// RemoveShare withdraws a share; the guest should have unmounted it.
func (m *Machine) RemoveShare(name string) error {
	return m.fs.RemoveShare(name)
}

// addVirtio puts dev behind the next virtio-mmio window and IOAPIC pin.
func (m *Machine) addVirtio(dev virtio.Device, useIRQFD bool) error {
	n := len(m.transports)
	irq := firstVirtioIRQ + n
	if irq >= boot.IOAPICPins {
		return fmt.Errorf("out of IOAPIC pins for virtio devices")
	}
	base := uint64(mmioBase + n*mmio.Size)
	line := newIRQLine(m.vm, uint32(irq), useIRQFD)
	m.irqs = append(m.irqs, line)
	var ioev mmio.IOEventFDs
	if m.sys.CheckExtension(kvm.CapIOEventFD) != 0 {
		ioev = ioeventfds{m.vm}
	}
	t := mmio.New(base, irq, dev, m.mem, line, ioev, m.cfg.Log.WithField("device", fmt.Sprintf("virtio-mmio@%#x", base)))
	m.transports = append(m.transports, t)
	return m.mmio.Register(base, mmio.Size, t)
}

// loadGuest loads kernel and initrd, writes the boot structures and puts
// every vCPU into its reset or entry state.
func (m *Machine) loadGuest() error {
	k, err := loader.LoadFile(m.mem, m.cfg.Kernel, m.cfg.CacheDir)
	if err != nil {
		return err
	}
	initrd, err := m.loadInitrd(k)
	if err != nil {
		return err
	}
	parts := []string{BaseCmdline, HostCmdline(), m.cfg.Cmdline}
	for _, t := range m.transports {
		parts = append(parts, t.CmdlineParam())
	}
	m.cmdline = joinCmdline(parts...)
	if err := boot.WriteCmdline(m.mem, m.cmdline); err != nil {
		return err
	}
	var ram []boot.RAMRange
	for _, r := range m.mem.Regions() {
		ram = append(ram, boot.RAMRange{Start: r.GuestAddr, End: r.End()})
	}
	e820 := boot.E820(ram)
	if err := boot.WriteMPTable(m.mem, m.cfg.CPUs); err != nil {
		return err
	}
	supported, err := m.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	tscDeadline := m.sys.CheckExtension(kvm.CapTSCDeadlineTimer) != 0
	for id := 0; id < m.cfg.CPUs; id++ {
		c, err := m.vm.CreateVCPU(id)
		if err != nil {
			return err
		}
		m.vcpus = append(m.vcpus, &vcpu{VCPU: c, m: m})
		if err := c.SetCPUID(vcpuCPUID(supported, id, m.cfg.CPUs, tscDeadline)); err != nil {
			return err
		}
		if err := c.SetMSRs(bootMSRs()); err != nil {
			return err
		}
		if err := c.SetFPU(bootFPU()); err != nil {
			return err
		}
		if err := setupLAPIC(c); err != nil {
			return err
		}
	}
	// Only the boot processor gets an entry state; the others wait for
	// the kernel's INIT/SIPI in the in-kernel LAPIC.
	bsp := m.vcpus[0]
	sregs, err := bsp.GetSregs()
	if err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	var regs kvm.Regs
	if k.PVHEntry != 0 && !m.cfg.Linux64 {
		if err := boot.WritePVHStartInfo(m.mem, e820, initrd); err != nil {
			return err
		}
		regs, sregs, err = boot.PVHEntryState(m.mem, k.PVHEntry, sregs)
	} else {
		if err := boot.WriteZeroPage(m.mem, k.Setup, e820, len(m.cmdline), initrd); err != nil {
			return err
		}
		regs, sregs, err = boot.Linux64EntryState(m.mem, k.Entry64, sregs)
	}
	if err != nil {
		return err
	}
	if err := bsp.SetSregs(sregs); err != nil {
		return err
	}
	return bsp.SetRegs(regs)
}

// loadInitrd places the initrd at the top of low RAM (below 2 GiB, where
// every boot protocol version can reach it), above the kernel.
func (m *Machine) loadInitrd(k loader.Kernel) (boot.Initrd, error) {
	if m.cfg.Initrd == "" {
		return boot.Initrd{}, nil
	}
	f, err := os.Open(m.cfg.Initrd)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return boot.Initrd{}, fmt.Errorf("initrd %s does not exist (build the default one with `make`, or pass --initrd)", m.cfg.Initrd)
		}
		return boot.Initrd{}, fmt.Errorf("initrd: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return boot.Initrd{}, fmt.Errorf("initrd: %w", err)
	}
	if !st.Mode().IsRegular() {
		return boot.Initrd{}, fmt.Errorf("initrd %s is not a regular file", m.cfg.Initrd)
	}
	top := min(m.mem.LowEnd(), 1<<31)
	size := uint64(st.Size())
	// Leave the kernel room for its early allocations above its image.
	const headroom = 16 << 20
	if size+k.End+headroom > top {
		need := (k.End + size + headroom + (1<<20 - 1)) >> 20
		return boot.Initrd{}, fmt.Errorf("--memory %d MiB is too little for this kernel and initrd: they need at least %d MiB", m.cfg.MemoryMiB, need)
	}
	addr := (top - size) &^ 0xfff
	if err := m.mem.LoadFile(addr, f, 0, size); err != nil {
		return boot.Initrd{}, fmt.Errorf("initrd: %w", err)
	}
	return boot.Initrd{Addr: addr, Size: size}, nil
}

// Cmdline is the kernel command line the guest was given.
func (m *Machine) Cmdline() string { return m.cmdline }

// Memory is the guest's RAM (for benchmarks: resident guest pages).
func (m *Machine) Memory() *memory.Memory { return m.mem }

// Console is the virtio-console device: Write sends input to /dev/hvc0.
func (m *Machine) Console() *console.Device { return m.console }

// Vsock is the virtio-vsock device: Dial reaches guest ports.
func (m *Machine) Vsock() *vsock.Device { return m.vsock }

// ConsoleTail returns the last bytes the guest printed on its serial
// console, for error messages.
func (m *Machine) ConsoleTail() string { return m.tail.String() }

// UsesIOEventFD reports whether virtio notifications bypass user space.
func (m *Machine) UsesIOEventFD() bool {
	return len(m.transports) > 0 && m.transports[0].UsesIOEventFD()
}

// FirstRun delivers the time just before the first KVM_RUN of the boot
// vCPU, once.
func (m *Machine) FirstRun() <-chan time.Time { return m.firstRun }

// Close stops the VM if it runs and releases everything: vCPU threads,
// eventfds, KVM fds and guest memory.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		m.Stop()
		m.startOnce.Do(func() { close(m.done) }) // never started
		<-m.done
		for _, t := range m.transports {
			t.Close()
		}
		if m.fs != nil {
			m.fs.Close()
		}
		for _, l := range m.irqs {
			l.close()
		}
		for _, c := range m.vcpus {
			c.Close()
		}
		if m.vm != nil {
			m.vm.Close()
		}
		if m.sys != nil {
			m.sys.Close()
		}
		if m.mem != nil {
			m.mem.Close()
		}
	})
	return nil
}
