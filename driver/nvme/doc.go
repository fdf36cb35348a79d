// Package nvme is nvmeperf's userspace NVMe driver core. It is transport-neutral: it
// talks to a controller only through the two seams in package bus (register access and
// DMA memory), so the same code runs on the simulated controller (driver/sim) and on
// real PCIe devices (driver/pcie).
//
// A Controller is brought up exactly as the NVMe Base Specification describes
// (disable, admin queue, enable, identify, number of queues) and hands out QPairs. A
// QPair is owned by one goroutine: it has no locks, and its only atomics are the MMIO
// doorbell writes and the phase-bit loads. Submission only writes the entry; the SQ
// tail doorbell is rung once per Poll (or per N commands, or per command, by choice),
// and the CQ head doorbell once per Poll.
package nvme
