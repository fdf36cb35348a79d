#include "textflag.h"

// DMB option encodings: OSHLD = 1, OSHST = 2 (outer shareable: the domain a DMA-capable
// device observes). See mmio.go for why each barrier is where it is.

// func store32(p *uint32, v uint32)
TEXT ·store32(SB), NOSPLIT, $0-12
	MOVD p+0(FP), R0
	MOVWU v+8(FP), R1
	DMB $2 // OSHST: earlier stores to host memory (SQ entries) before the doorbell
	MOVW R1, (R0)
	RET

// func load32(p *uint32) uint32
TEXT ·load32(SB), NOSPLIT, $0-12
	MOVD p+0(FP), R0
	MOVWU (R0), R1
	DMB $1 // OSHLD: later loads (DMA data) after the register read
	MOVW R1, ret+8(FP)
	RET
