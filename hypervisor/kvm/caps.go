// KVM capabilities by name, for `novm check` and for choosing between a
// fast path (ioeventfd, irqfd) and its fallback.
package kvm

// Cap is a KVM_CAP_* number.
type Cap uint32

// The capabilities novm uses or reports.
const (
	CapIRQChip          Cap = 0
	CapHLT              Cap = 1
	CapUserMemory       Cap = 3
	CapSetTSSAddr       Cap = 4
	CapExtCPUID         Cap = 7
	CapNRVCPUs          Cap = 9
	CapNRMemslots       Cap = 10
	CapMPState          Cap = 14
	CapIRQRouting       Cap = 25
	CapIRQFD            Cap = 32
	CapPIT2             Cap = 33
	CapIOEventFD        Cap = 36
	CapSetIdentityMap   Cap = 37
	CapXSave            Cap = 55
	CapMaxVCPUs         Cap = 66
	CapTSCDeadlineTimer Cap = 72
	CapSignalMSI        Cap = 77
	CapReadonlyMem      Cap = 81
	CapSplitIRQChip     Cap = 121
	CapIOEventFDAnyLen  Cap = 122
	CapX2APICAPI        Cap = 129
	CapImmediateExit    Cap = 136
)

// CapInfo names a capability and says whether novm cannot run without it.
type CapInfo struct {
	Cap      Cap
	Name     string
	Required bool
}

// KnownCaps lists the capabilities `novm check` reports, required first.
var KnownCaps = []CapInfo{
	{CapUserMemory, "USER_MEMORY", true},
	{CapIRQChip, "IRQCHIP", true},
	{CapPIT2, "PIT2", true},
	{CapExtCPUID, "EXT_CPUID", true},
	{CapImmediateExit, "IMMEDIATE_EXIT", true},
	{CapIRQFD, "IRQFD", false},
	{CapIOEventFD, "IOEVENTFD", false},
	{CapSetTSSAddr, "SET_TSS_ADDR", false},
	{CapSetIdentityMap, "SET_IDENTITY_MAP_ADDR", false},
	{CapMPState, "MP_STATE", false},
	{CapIRQRouting, "IRQ_ROUTING", false},
	{CapSignalMSI, "SIGNAL_MSI", false},
	{CapXSave, "XSAVE", false},
	{CapTSCDeadlineTimer, "TSC_DEADLINE_TIMER", false},
	{CapReadonlyMem, "READONLY_MEM", false},
	{CapSplitIRQChip, "SPLIT_IRQCHIP", false},
	{CapX2APICAPI, "X2APIC_API", false},
	{CapNRVCPUs, "NR_VCPUS", false},
	{CapMaxVCPUs, "MAX_VCPUS", false},
	{CapNRMemslots, "NR_MEMSLOTS", false},
}
