package main

import (
	"strings"
	"testing"
)

// The simulator's inline mode (mode:inline) through the whole CLI: writes carry the
// verify pattern and reads check it, on one and on two workers, each with its own
// queue running the controller model on its own thread.
func TestE2EVerifyRoundTripOnInlineSim(t *testing.T) {
	for _, cores := range []string{"[0]", "[0,1]"} {
		r := runBinary(t, "-q", "8", "-o", "4k", "-w", "randrw", "-M", "50", "-d", "4000", "-t", "30", "--verify",
			"-c", cores, "-r", sim("nssize:4m store:mem mode:inline"), "--output-format", "json")
		if r.code != 0 {
			t.Fatalf("cores %s: exit %d: %s\n%s", cores, r.code, r.stderr, r.stdout)
		}
		d := decodeDoc(t, r.stdout)
		if d.Total.Verify == nil || d.Total.Verify.Checked == 0 || d.Total.Verify.Mismatched != 0 {
			t.Fatalf("cores %s: verify totals %+v", cores, d.Total.Verify)
		}
		want := strings.Count(cores, ",") + 1
		if len(d.Workers) != want {
			t.Errorf("cores %s: %d workers in the report, want %d", cores, len(d.Workers), want)
		}
	}
}

// What inline mode cannot do is refused with the key, the value and the alternative.
func TestE2EInlineSimRefusesNAND(t *testing.T) {
	r := runBinary(t, "-q", "1", "-o", "4k", "-w", "randread", "-t", "1", "-r", sim("mode:inline model:nand"))
	if r.code != 2 || !strings.Contains(r.stderr, "mode inline with model nand") || !strings.Contains(r.stderr, "mode=thread") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("stack trace on stderr: %q", r.stderr)
	}
}
