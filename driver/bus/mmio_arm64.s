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

// func copy64(dst, src *uint64, n int)
// n plain 8-byte loads and stores in ascending order (no pair or vector stores).
TEXT ·copy64(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	CBZ R2, done
loop:
	MOVD.P 8(R1), R3
	MOVD.P R3, 8(R0)
	SUB $1, R2
	CBNZ R2, loop
done:
	RET
