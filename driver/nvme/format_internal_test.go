package nvme

import (
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// TestFormatCheck: every format nvmeperf refuses is named in the message, and the
// ones it drives pass.
func TestFormatCheck(t *testing.T) {
	good := []Format{
		{LBASize: 512},
		{LBASize: 4096, MetadataSize: 8, Extended: true},
		{LBASize: 512, MetadataSize: 8, PIType: 1},
		{LBASize: 4096, MetadataSize: 64, Extended: true, PIType: 3, PIFirst: true},
	}
	for _, f := range good {
		if err := f.check(); err != nil {
			t.Errorf("%s refused: %v", f, err)
		}
	}
	bad := []struct {
		f         Format
		name, why string
	}{
		{Format{LBASize: 256}, "256+0, no metadata", "outside 512 B to 64 KiB"},
		{Format{LBASize: 512, MetadataSize: 6, Extended: true}, "512+6 extended LBA, no PI", "not a multiple of 4"},
		{Format{LBASize: 512, MetadataSize: 4, PIType: 1}, "512+4 separate metadata, PI type 1 (last 8 bytes)", "needs 8 bytes"},
		{Format{LBASize: 512, MetadataSize: 8, PIType: 5}, "PI type 5", "reserved"},
		{Format{LBASize: 4096, MetadataSize: 16, Extended: true, PIType: 1, PIFormat: spec.PIF64Guard}, "4096+16 extended LBA, PI type 1 (last 8 bytes) with a 64-bit guard", "16-bit guard"},
		{Format{LBASize: 4096, MetadataSize: 16, PIType: 2, StorageTagBits: 8}, "and a 8-bit storage tag", "no storage tag"},
	}
	for _, tc := range bad {
		err := tc.f.check()
		if err == nil {
			t.Errorf("%s accepted", tc.f)
			continue
		}
		if !strings.Contains(tc.f.String(), tc.name) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("format %q, error %q: want %q and %q", tc.f, err, tc.name, tc.why)
		}
	}
}
