#include "textflag.h"

// amd64 is TSO: a plain MOV store is ordered after every earlier store, and a plain MOV
// load before every later load. No LOCK prefix, no XCHG: see mmio.go.

// func store32(p *uint32, v uint32)
TEXT ·store32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, (AX)
	RET

// func load32(p *uint32) uint32
TEXT ·load32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL (AX), BX
	MOVL BX, ret+8(FP)
	RET

// func copy64(dst, src *uint64, n int)
// n plain 8-byte loads and stores in ascending order: no REP MOVS, no vector stores,
// nothing narrower than a quadword reaches the device.
TEXT ·copy64(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	TESTQ CX, CX
	JEQ done
loop:
	MOVQ (SI), AX
	MOVQ AX, (DI)
	ADDQ $8, SI
	ADDQ $8, DI
	DECQ CX
	JNE loop
done:
	RET
