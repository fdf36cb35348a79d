package workload

import (
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/verify"
)

// maxVerifyReports is how many mismatch descriptions a job keeps in VerifyStats.First.
const maxVerifyReports = 8

// prepareVerify readies r's buffer before submission in verify mode: a write carries
// the verify pattern of its LBAs (seeded with Config.Seed); a read buffer is zeroed so
// that stale data from an earlier I/O cannot pass for what the device returned.
// The caller checks w.verify.
func (w *worker) prepareVerify(j *job, q target.Queue, r *target.Request) {
	buf := q.Buffer(r.Buf)[:r.Length]
	if r.Op == target.OpWrite {
		verify.Fill(buf, int(j.info.LBASize), r.Offset/uint64(j.info.LBASize), w.cfg.Seed)
		return
	}
	clear(buf)
}

// checkVerify checks every block of a successful read. Blocks this run cannot have
// written — zeros, data without the verify header, or the pattern of another seed —
// count as Unwritten: in write-check mode that is normal (a random read may land on a
// block the run has not written yet, and the device may hold older data), so only
// blocks that carry this run's header yet hold the wrong LBA or bytes are mismatches.
// In read-only mode every block must carry the pattern: anything else is reported.
// The caller checks w.verify.
func (w *worker) checkVerify(j *job, r *target.Request) {
	lbaSize := int(j.info.LBASize)
	buf := j.queues[r.Tag&tagQueueMask].Buffer(r.Buf)[:r.Length]
	lba := r.Offset / uint64(lbaSize)
	v := &j.verify
	for off := 0; off+lbaSize <= len(buf); off += lbaSize {
		v.Checked++
		ok, m := verify.CheckBlock(buf[off:off+lbaSize], lba, w.cfg.Seed)
		lba++
		if ok {
			continue
		}
		switch {
		case m.Kind == verify.KindUnwritten:
			v.Unwritten++
			if w.cfg.Verify != VerifyReadOnly {
				continue
			}
		case w.cfg.Verify == VerifyWriteCheck && (m.Kind == verify.KindNoHeader || m.Kind == verify.KindSeed):
			v.Unwritten++
			continue
		default:
			v.Mismatched++
		}
		if len(v.First) < maxVerifyReports {
			v.First = append(v.First, m.String()) // only on a failed check, never per I/O
		}
	}
}
