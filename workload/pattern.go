package workload

import (
	"fmt"
	"strings"
)

// Pattern is the access pattern of a run, named as fio and spdk_nvme_perf (-w) name them.
type Pattern uint8

// Access patterns.
const (
	Read      Pattern = iota // sequential reads
	Write                    // sequential writes
	RandRead                 // uniform (or zipf) random reads
	RandWrite                // uniform (or zipf) random writes
	RW                       // sequential offsets, each I/O a read with probability ReadPercent
	RandRW                   // random offsets, each I/O a read with probability ReadPercent
	numPatterns
)

var patternNames = [numPatterns]string{"read", "write", "randread", "randwrite", "rw", "randrw"}

// ParsePattern maps a name such as "randread" onto its Pattern; case is ignored.
func ParsePattern(s string) (Pattern, error) {
	for i, name := range patternNames {
		if strings.EqualFold(s, name) {
			return Pattern(i), nil
		}
	}
	return 0, fmt.Errorf("workload: pattern %q: accepted values are %s", s, strings.Join(patternNames[:], ", "))
}

func (p Pattern) String() string {
	if p < numPatterns {
		return patternNames[p]
	}
	return fmt.Sprintf("pattern(%d)", uint8(p))
}

// Random reports whether offsets are drawn at random rather than sequentially.
func (p Pattern) Random() bool { return p == RandRead || p == RandWrite || p == RandRW }

// Mixed reports whether reads and writes are mixed by ReadPercent.
func (p Pattern) Mixed() bool { return p == RW || p == RandRW }

// readShare returns the percentage of I/Os that are reads under this pattern.
func (p Pattern) readShare(readPercent int) int {
	switch p {
	case Read, RandRead:
		return 100
	case Write, RandWrite:
		return 0
	}
	return readPercent
}

// VerifyMode selects data verification.
type VerifyMode uint8

// Verify modes.
const (
	// VerifyOff moves data without looking at it.
	VerifyOff VerifyMode = iota
	// VerifyWriteCheck fills every write with the verify pattern of its LBAs and checks
	// every read against it.
	VerifyWriteCheck
	// VerifyReadOnly checks reads against data a previous run wrote; writes are refused
	// so that the data under test is not disturbed.
	VerifyReadOnly
	numVerifyModes
)

var verifyNames = [numVerifyModes]string{"off", "write-check", "read-only"}

func (v VerifyMode) String() string {
	if v < numVerifyModes {
		return verifyNames[v]
	}
	return fmt.Sprintf("verify(%d)", uint8(v))
}
