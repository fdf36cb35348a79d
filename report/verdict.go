package report

import (
	"fmt"
	"strings"

	"github.com/nvmeperf/nvmeperf/workload"
)

// Exit statuses of nvmeperf. They belong to the verdict: Judge decides status and exit
// status together, so the text report, the JSON document and the process never disagree.
const (
	ExitOK          = 0   // the run did what was asked and nothing failed
	ExitFailed      = 1   // I/O errors, a device failure, a verify failure or a run error
	ExitUsage       = 2   // a bad command line, or a refusal to write somewhere; no I/O was done
	ExitInterrupted = 130 // SIGINT or SIGTERM (128 + SIGINT, as shells report it)
)

// StatusVerifyUnchecked means verify mode was on and blocks were read, but not one of
// them could be checked against the pattern (a target that returns no data, such as the
// simulator's discard store, or reads that only hit blocks never written): the run
// verified nothing, so it is not ok.
const StatusVerifyUnchecked = "verify_unchecked"

// Facts are everything a run's verdict depends on.
type Facts struct {
	Result workload.Result
	// ContinueOnError is -Q: I/O errors are expected and counted; the run still fails
	// when not a single I/O succeeded.
	ContinueOnError bool
	Verify          workload.VerifyMode
	// DeviceFailed says Result.Err is a device failure (the caller knows the drivers'
	// sentinel errors; this package does not import them).
	DeviceFailed bool
}

// Verdict is the status written in the report, the reason for a failure, and the
// process's exit status.
type Verdict struct {
	Status string // "ok", "interrupted", "io_errors", "verify_failed", "verify_unchecked", "device_failed: <why>", "error: <why>"
	Error  string // why the run is not ok; empty when it is
	Exit   int
}

// OK reports whether the verdict is a success.
func (v Verdict) OK() bool { return v.Status == StatusOK }

// Judge is the one place that turns a run's facts into its status and exit status.
// In order: a device failure, then a run error (io_errors when I/Os failed), then verify
// mismatches (and, in read-only verify mode, blocks that carry no pattern), then I/O
// errors (always when no I/O succeeded, -Q or not; otherwise only without -Q), then an
// interruption, then a run that completed no I/O at all, then a verify run that checked
// nothing, then -Q's counted errors (status io_errors, exit 0), else ok.
func Judge(f Facts) Verdict {
	res := f.Result
	var ios, ioErrors uint64
	var v workload.VerifyStats
	for _, j := range res.Jobs {
		ios += j.Read.IOs + j.Write.IOs
		ioErrors += j.Read.Errors + j.Write.Errors
		v.Checked += j.Verify.Checked
		v.Mismatched += j.Verify.Mismatched
		v.Unwritten += j.Verify.Unwritten
	}
	why := ""
	if res.Err != nil {
		why = res.Err.Error()
	}
	switch {
	case res.Err != nil && f.DeviceFailed:
		return Verdict{Status: StatusDeviceFailed + ": " + why, Error: why, Exit: ExitFailed}
	case res.Err != nil && ioErrors > 0:
		return Verdict{Status: StatusIOErrors, Error: why, Exit: ExitFailed}
	case res.Err != nil:
		return Verdict{Status: StatusError + ": " + why, Error: why, Exit: ExitFailed}
	case v.Mismatched > 0:
		return Verdict{Status: StatusVerifyFailed, Exit: ExitFailed,
			Error: fmt.Sprintf("verify: %d of %d blocks read do not hold the pattern written for them", v.Mismatched, v.Checked)}
	case f.Verify == workload.VerifyReadOnly && v.Unwritten > 0:
		return Verdict{Status: StatusVerifyFailed, Exit: ExitFailed,
			Error: fmt.Sprintf("verify-read: %d of %d blocks read carry no verify pattern (zeroed or never written with --verify and this --seed)", v.Unwritten, v.Checked)}
	case ioErrors > 0 && ios == 0:
		return Verdict{Status: StatusIOErrors, Exit: ExitFailed,
			Error: fmt.Sprintf("every I/O failed (%d errors, 0 completed)", ioErrors)}
	case ioErrors > 0 && !f.ContinueOnError:
		return Verdict{Status: StatusIOErrors, Exit: ExitFailed, Error: fmt.Sprintf("%d I/Os failed", ioErrors)}
	case res.Interrupted:
		return Verdict{Status: StatusInterrupted, Exit: ExitInterrupted} // not a failure: the numbers are valid
	case ios == 0:
		return Verdict{Status: StatusError + ": no I/O completed in the measured time", Exit: ExitFailed,
			Error: fmt.Sprintf("no I/O completed in the measured time (%v): nothing was measured", res.Duration)}
	case f.Verify != workload.VerifyOff && v.Checked > 0 && v.Checked == v.Unwritten:
		return Verdict{Status: StatusVerifyUnchecked, Exit: ExitFailed,
			Error: fmt.Sprintf("verify: none of the %d blocks read could be checked (all read as zeros or data this run did not write): the target returned no data to verify", v.Checked)}
	case ioErrors > 0:
		// -Q: the errors were asked to be counted, not to fail the run; the status
		// still names them.
		return Verdict{Status: StatusIOErrors, Exit: ExitOK,
			Error: fmt.Sprintf("%d I/Os failed (counted with -Q, %d completed)", ioErrors, ios)}
	}
	return Verdict{Status: StatusOK, Exit: ExitOK}
}

// UsageVerdict is the verdict of a command line that was refused before any I/O.
func UsageVerdict(why string) Verdict {
	return Verdict{Status: StatusError + ": usage: " + why, Error: "usage: " + why, Exit: ExitUsage}
}

// OneLine is the verdict as one line for stderr: the status and, when it does not
// already say it, the reason, with any line breaks of joined errors folded.
func (v Verdict) OneLine() string {
	s := v.Status
	if v.Error != "" && !strings.Contains(s, v.Error) {
		s += ": " + v.Error
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
