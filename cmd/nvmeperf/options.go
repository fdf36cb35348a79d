package main

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/workload"
)

// usageError is a bad command line: the message names the flag, the value and what is
// accepted, and the process exits with status 2 before touching any device.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// maxSeconds is the longest -t accepted: a year.
const maxSeconds = 365 * 24 * 3600

// options holds the command line as given, before it is turned into a workload.
type options struct {
	depth          int
	ioSize         string
	pattern        string
	readPercent    int
	seconds        float64
	warmup         float64
	numIOs         uint64
	coreMask       string
	trids          []string
	qpairs         int
	ioQueueSize    int
	maxCompletions int
	zipf           float64
	continueOnErr  bool
	align          int
	latency        int // -L count: 1 summary, 2 buckets
	outputFormat   string
	outputFile     string
	seed           uint64
	doorbell       string
	verify         bool
	verifyRead     bool
	allowDestruct  bool
	fileSize       string
	sqpoll, hipri  bool
	passthru       bool
	labels         []string
	quiet          bool
	ioUnitSize     string // -O
	metadata       string // -e

	set func(name string) bool // whether a flag was given
}

// plan is a validated run: what the workload engine and the reporter need.
type plan struct {
	cfg     workload.Config
	cores   []int
	mask    string
	format  string
	latency int
	labels  map[string]string
}

// parseSize reads an I/O size such as 4096, 4k, 128K, 1m, 1MiB (binary units).
func parseSize(flag, s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > math.MaxInt64/mult {
		return 0, usagef("%s %q: not a size (want a positive number of bytes, optionally with k, m, g or t: 512, 4k, 128k, 1m)", flag, s)
	}
	return v * mult, nil
}

// parseCores reads a core mask as spdk_nvme_perf takes it: a hex mask ("0x3", or "3"
// as DPDK reads it) or a list in brackets or with commas ("[0,2-3]", "0,2-3").
func parseCores(s string) ([]int, error) {
	t := strings.TrimSpace(s)
	bad := func(why string) error {
		return usagef("-c %q: %s (want a hex core mask such as 0x3, or a list such as [0,2-3])", s, why)
	}
	if t == "" {
		return nil, bad("empty")
	}
	if strings.HasPrefix(t, "[") || strings.ContainsAny(t, ",-") {
		t = strings.TrimSuffix(strings.TrimPrefix(t, "["), "]")
		seen := map[int]bool{}
		var cores []int
		for _, part := range strings.Split(t, ",") {
			lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil || a < 0 || b < a || b > 1023 {
				return nil, bad(fmt.Sprintf("%q is not a core or a range of cores 0-1023", part))
			}
			for c := a; c <= b; c++ {
				if !seen[c] {
					seen[c] = true
					cores = append(cores, c)
				}
			}
		}
		sort.Ints(cores)
		return cores, nil
	}
	hex := strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	if hex == "" || len(hex) > 256 {
		return nil, bad("not a hex mask")
	}
	var cores []int
	for i := len(hex) - 1; i >= 0; i-- {
		v, err := strconv.ParseUint(hex[i:i+1], 16, 8)
		if err != nil {
			return nil, bad(fmt.Sprintf("%q is not a hex digit", hex[i:i+1]))
		}
		for bit := 0; bit < 4; bit++ {
			if v&(1<<bit) != 0 {
				cores = append(cores, (len(hex)-1-i)*4+bit)
			}
		}
	}
	if len(cores) == 0 {
		return nil, bad("selects no core")
	}
	return cores, nil
}

// parseDoorbell reads --doorbell: per-poll, per-command, or a number N (ring after
// every N submissions).
func parseDoorbell(s string) (target.DoorbellMode, int, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "per-poll", "batch", "batched":
		return target.DoorbellPerPoll, 0, nil
	case "per-command", "per-cmd", "every":
		return target.DoorbellPerCommand, 0, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(s, "every-"))
	if err != nil || n < 1 {
		return 0, 0, usagef("--doorbell %q: want per-poll (one SQ doorbell per poll, the default), per-command, or a number N ≥ 1 (ring after every N submissions)", s)
	}
	return target.DoorbellEveryN, n, nil
}

// parseMetadata reads -e as spdk_nvme_perf takes it: comma-separated PRACT=0 or
// PRACT=1 and PRCHK= followed by GUARD, REFTAG and APPTAG joined with '|', e.g.
// 'PRACT=0,PRCHK=GUARD|REFTAG|APPTAG'. Keys and fields are case-insensitive.
func parseMetadata(s string) (target.Protection, error) {
	var p target.Protection
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	bad := func(why string) error {
		return usagef("-e %q: %s (want PRACT=0 or PRACT=1 and PRCHK=GUARD|REFTAG|APPTAG with any of the three, comma-separated, e.g. 'PRACT=0,PRCHK=GUARD|REFTAG')", s, why)
	}
	for _, part := range strings.Split(s, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return p, bad(fmt.Sprintf("%q is not KEY=VALUE", part))
		}
		switch strings.ToUpper(strings.TrimSpace(key)) {
		case "PRACT":
			switch strings.TrimSpace(val) {
			case "0":
				p.Action = false
			case "1":
				p.Action = true
			default:
				return p, bad(fmt.Sprintf("PRACT=%s is neither 0 nor 1", val))
			}
		case "PRCHK":
			p.Check = 0
			for _, f := range strings.Split(val, "|") {
				switch strings.ToUpper(strings.TrimSpace(f)) {
				case "GUARD":
					p.Check |= target.PICheckGuard
				case "REFTAG":
					p.Check |= target.PICheckRefTag
				case "APPTAG":
					p.Check |= target.PICheckAppTag
				default:
					return p, bad(fmt.Sprintf("PRCHK field %q is not GUARD, REFTAG or APPTAG", f))
				}
			}
		default:
			return p, bad(fmt.Sprintf("unknown key %q", key))
		}
	}
	return p, nil
}

// validate turns options into a plan, or a usage error naming the flag.
func (o *options) validate(allowed []int) (*plan, error) {
	p := &plan{}
	if !o.set("io-depth") {
		return nil, usagef("-q (queue depth) is required: the number of I/Os in flight per namespace per core, e.g. -q 128")
	}
	if o.depth < 1 || o.depth > 65535 {
		return nil, usagef("-q %d: queue depth must be 1..65535", o.depth)
	}
	if !o.set("io-size") {
		return nil, usagef("-o (I/O size) is required, e.g. -o 4096 or -o 4k")
	}
	size, err := parseSize("-o", o.ioSize)
	if err != nil {
		return nil, err
	}
	if size < 512 || size > 64<<20 || size%512 != 0 {
		return nil, usagef("-o %s: I/O size must be a multiple of 512 bytes from 512 to 64m", o.ioSize)
	}
	if !o.set("io-pattern") {
		return nil, usagef("-w (pattern) is required: one of read, write, randread, randwrite, rw, randrw")
	}
	pat, err := workload.ParsePattern(strings.ToLower(o.pattern))
	if err != nil {
		return nil, usagef("-w %q: pattern must be one of read, write, randread, randwrite, rw, randrw", o.pattern)
	}
	readPct := 0
	switch {
	case pat.Mixed():
		if !o.set("rwmixread") {
			return nil, usagef("-M (read percentage) is required with -w %s, e.g. -M 70 for 70%% reads", o.pattern)
		}
		if o.readPercent < 0 || o.readPercent > 100 {
			return nil, usagef("-M %d: read percentage must be 0..100", o.readPercent)
		}
		readPct = o.readPercent
	case pat == workload.Read || pat == workload.RandRead:
		readPct = 100
	}
	if !o.set("time") && !o.set("number-ios") {
		return nil, usagef("-t (seconds to run) is required, e.g. -t 10 (or -d to stop after a number of I/Os)")
	}
	if o.seconds < 0 || o.seconds > maxSeconds || math.IsNaN(o.seconds) {
		return nil, usagef("-t %v: seconds must be more than 0 and at most %d (365 days)", o.seconds, maxSeconds)
	}
	if o.set("time") && o.seconds == 0 && !o.set("number-ios") {
		return nil, usagef("-t 0: seconds must be more than 0 and at most %d (or give -d to stop after a number of I/Os)", maxSeconds)
	}
	if o.warmup < 0 || o.warmup > 24*3600 || math.IsNaN(o.warmup) {
		return nil, usagef("-a %v: warm-up seconds must be from 0 to 86400 (one day)", o.warmup)
	}
	if o.set("number-ios") && o.numIOs == 0 {
		return nil, usagef("-d 0: number of I/Os must be at least 1")
	}
	if o.set("num-qpairs") && (o.qpairs < 1 || o.qpairs > 1024) {
		// Above -q each I/O goes to the next pair in turn, as in spdk_nvme_perf.
		return nil, usagef("-P %d: queue pairs per namespace must be 1..1024", o.qpairs)
	}
	if o.set("io-queue-size") && (o.ioQueueSize < 2 || o.ioQueueSize > 65536) {
		return nil, usagef("--io-queue-size %d: must be 2..65536 entries (it is clamped to the controller's MQES+1)", o.ioQueueSize)
	}
	if o.maxCompletions < 0 {
		return nil, usagef("-C %d: max completions per poll must be 0 (no limit) or more", o.maxCompletions)
	}
	if o.zipf < 0 || math.IsNaN(o.zipf) || math.IsInf(o.zipf, 0) {
		return nil, usagef("-F %v: zipf theta must be a positive number such as 0.8 or 1.2", o.zipf)
	}
	if o.zipf > 0 && !pat.Random() {
		return nil, usagef("-F %v: zipf applies to random patterns (randread, randwrite, randrw), not -w %s", o.zipf, o.pattern)
	}
	if o.set("buffer-alignment") && (o.align < 4 || bits.OnesCount(uint(o.align)) != 1 || o.align > 1<<21) {
		return nil, usagef("-A %d: buffer alignment must be a power of two from 4 to 2097152", o.align)
	}
	if o.latency > 2 {
		return nil, usagef("-L given %d times: use -L for the latency summary or -LL for the bucket listing", o.latency)
	}
	format := strings.ToLower(o.outputFormat)
	if !validOutputFormat(format) {
		return nil, usagef("--output-format %q: want text or json, fio-json, or text,json / text,fio-json with --json-output FILE", o.outputFormat)
	}
	mode, n, err := parseDoorbell(o.doorbell)
	if err != nil {
		return nil, err
	}
	if o.verify && o.verifyRead {
		return nil, usagef("--verify and --verify-read together: --verify writes the pattern and checks reads, --verify-read only checks data written earlier; pick one")
	}
	verify := workload.VerifyOff
	switch {
	case o.verify:
		verify = workload.VerifyWriteCheck
	case o.verifyRead:
		if pat != workload.Read && pat != workload.RandRead {
			return nil, usagef("--verify-read with -w %s: a read-only verify pass needs -w read or -w randread", o.pattern)
		}
		verify = workload.VerifyReadOnly
	}
	var cores []int
	mask := o.coreMask
	if o.set("core-mask") {
		if cores, err = parseCores(o.coreMask); err != nil {
			return nil, err
		}
		inSet := map[int]bool{}
		for _, c := range allowed {
			inSet[c] = true
		}
		for _, c := range cores {
			if len(allowed) > 0 && !inSet[c] {
				return nil, usagef("-c %s: core %d is not available to this process (available: %s)", o.coreMask, c, formatCores(allowed))
			}
		}
	} else if len(allowed) > 0 {
		cores = []int{allowed[0]}
		mask = fmt.Sprintf("[%d]", allowed[0])
	}
	labels := map[string]string{}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, usagef("--label %q: want key=value", l)
		}
		labels[k] = v
	}
	var unit int64
	if o.set("io-unit-size") {
		if unit, err = parseSize("-O", o.ioUnitSize); err != nil {
			return nil, err
		}
		if unit%512 != 0 || unit > size {
			return nil, usagef("-O %s: io unit size must be a multiple of the LBA size (512 or more) and at most the I/O size -o %s", o.ioUnitSize, o.ioSize)
		}
	}
	prot, err := parseMetadata(o.metadata)
	if err != nil {
		return nil, err
	}
	dur := time.Duration(o.seconds * float64(time.Second))
	p.cfg = workload.Config{
		Pattern:         pat,
		ReadPercent:     readPct,
		IOSize:          int(size),
		QueueDepth:      o.depth,
		Duration:        dur,
		NumIOs:          o.numIOs, // per job here; bench scales it by the number of jobs
		Warmup:          time.Duration(o.warmup * float64(time.Second)),
		Cores:           cores,
		QPairsPerTarget: o.qpairs,
		QueueSize:       o.ioQueueSize,
		MaxCompletions:  o.maxCompletions,
		Doorbell:        mode,
		DoorbellN:       n,
		BufferAlign:     o.align,
		ZipfTheta:       o.zipf,
		ContinueOnError: o.continueOnErr,
		Seed:            o.seed,
		Verify:          verify,
		IOUnitSize:      int(unit),
		Protection:      prot,
	}
	if err := p.cfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	p.cores, p.mask, p.format, p.latency, p.labels = cores, mask, format, o.latency, labels
	return p, nil
}

func formatCores(cores []int) string {
	var parts []string
	for i := 0; i < len(cores); {
		j := i
		for j+1 < len(cores) && cores[j+1] == cores[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cores[i], cores[j]))
		} else {
			parts = append(parts, strconv.Itoa(cores[i]))
		}
		i = j + 1
	}
	return "[" + strings.Join(parts, ",") + "]"
}
