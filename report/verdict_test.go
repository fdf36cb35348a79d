package report

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/workload"
)

func resultOf(ios, errs uint64, v workload.VerifyStats) workload.Result {
	return workload.Result{Jobs: []workload.Job{{
		Read:   workload.Side{IOs: ios, Errors: errs, Latency: workload.NewLatencyHistogram()},
		Write:  workload.Side{Latency: workload.NewLatencyHistogram()},
		Verify: v,
	}}}
}

// TestJudge is the verdict table: every status and exit status from the facts of a run.
func TestJudge(t *testing.T) {
	failed := resultOf(10, 0, workload.VerifyStats{})
	failed.Err = fmt.Errorf("workload: worker 0: %w", errors.New("controller failed: fatal status"))
	ioFailed := resultOf(10, 1, workload.VerifyStats{})
	ioFailed.Err = errors.New("read at offset 0: unrecovered read error")
	interrupted := resultOf(10, 0, workload.VerifyStats{})
	interrupted.Interrupted = true
	interruptedUnchecked := resultOf(10, 0, workload.VerifyStats{Checked: 10, Unwritten: 10})
	interruptedUnchecked.Interrupted = true
	cases := []struct {
		name   string
		f      Facts
		status string
		exit   int
		why    string
	}{
		{"clean", Facts{Result: resultOf(100, 0, workload.VerifyStats{})}, "ok", 0, ""},
		{"device failure", Facts{Result: failed, DeviceFailed: true}, "device_failed: workload: worker 0: controller failed: fatal status", 1, "fatal status"},
		{"run error", Facts{Result: failed}, "error: workload: worker 0: controller failed: fatal status", 1, "fatal status"},
		{"first I/O error stops the run", Facts{Result: ioFailed}, "io_errors", 1, "unrecovered"},
		{"errors without -Q", Facts{Result: resultOf(100, 3, workload.VerifyStats{})}, "io_errors", 1, "3 I/Os failed"},
		// -Q with every I/O failing is no success (the 2 million errors, 0 good).
		{"-Q, every I/O failed", Facts{Result: resultOf(0, 2000000, workload.VerifyStats{}), ContinueOnError: true}, "io_errors", 1, "every I/O failed"},
		{"-Q, some failed", Facts{Result: resultOf(100, 3, workload.VerifyStats{}), ContinueOnError: true}, "io_errors", 0, "counted with -Q"},
		{"interrupted", Facts{Result: interrupted}, "interrupted", 130, ""},
		{"verify mismatch", Facts{Result: resultOf(100, 0, workload.VerifyStats{Checked: 100, Mismatched: 1}), Verify: workload.VerifyWriteCheck}, "verify_failed", 1, "1 of 100"},
		// --verify-read on blocks that carry no pattern is a failure, not a pass.
		{"verify-read on zeroed blocks", Facts{Result: resultOf(100, 0, workload.VerifyStats{Checked: 100, Unwritten: 100}), Verify: workload.VerifyReadOnly}, "verify_failed", 1, "carry no verify pattern"},
		{"verify-read, one block unwritten", Facts{Result: resultOf(100, 0, workload.VerifyStats{Checked: 100, Unwritten: 1}), Verify: workload.VerifyReadOnly}, "verify_failed", 1, "1 of 100"},
		// --verify on a target that returns no data (discard store) checked nothing.
		{"verify checked nothing", Facts{Result: resultOf(100, 0, workload.VerifyStats{Checked: 100, Unwritten: 100}), Verify: workload.VerifyWriteCheck}, "verify_unchecked", 1, "none of the 100"},
		{"verify, some blocks not yet written", Facts{Result: resultOf(100, 0, workload.VerifyStats{Checked: 100, Unwritten: 60}), Verify: workload.VerifyWriteCheck}, "ok", 0, ""},
		{"verify write-only pass", Facts{Result: resultOf(100, 0, workload.VerifyStats{}), Verify: workload.VerifyWriteCheck}, "ok", 0, ""},
		{"nothing completed", Facts{Result: resultOf(0, 0, workload.VerifyStats{})}, "error: no I/O completed in the measured time", 1, "nothing was measured"},
		{"interrupted verify that checked nothing yet", Facts{Result: interruptedUnchecked, Verify: workload.VerifyWriteCheck}, "interrupted", 130, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.f)
			if v.Status != c.status || v.Exit != c.exit || !strings.Contains(v.Error, c.why) || (c.why == "" && v.Error != "" && v.Exit == 0) {
				t.Errorf("Judge = %+v; want status %q exit %d error containing %q", v, c.status, c.exit, c.why)
			}
			if v.OK() != (c.status == "ok") {
				t.Errorf("OK() = %v for %q", v.OK(), v.Status)
			}
			if strings.Contains(v.OneLine(), "\n") {
				t.Errorf("OneLine has a line break: %q", v.OneLine())
			}
			// The JSON document says what the verdict says.
			d := BuildVerdict(Meta{}, c.f.Result, v)
			if d.Status != v.Status || d.Error != v.Error {
				t.Errorf("document status %q error %q, verdict %+v", d.Status, d.Error, v)
			}
		})
	}
}
