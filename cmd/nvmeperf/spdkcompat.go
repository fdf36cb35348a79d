package main

// spdk_nvme_perf compatibility: every option of spdk_nvme_perf's --help gets exactly
// one treatment (docs/spdk-compat.md lists them, TestSPDKOptionTable keeps the two in
// step): implemented with SPDK's meaning, accepted with a one-line notice that it does
// not apply, or refused with exit status 2 and what to use instead. Nothing is silently
// misread.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/trid"
	"github.com/nvmeperf/nvmeperf/workload"
)

// treatment is what nvmeperf does with one spdk_nvme_perf option.
type treatment int

const (
	implemented   treatment = iota // SPDK's meaning
	notApplicable                  // accepted; a one-line notice on stderr
	refused                        // exit 2, naming the option and what to use instead
	otherBranch                    // implemented by a change that lands separately (-O, -e)
)

func (t treatment) String() string {
	switch t {
	case implemented:
		return "implemented"
	case notApplicable:
		return "accepted, notice"
	case refused:
		return "refused (exit 2)"
	case otherBranch:
		return "implemented (io-unit split / PI change)"
	}
	return "?"
}

// spdkOption is one entry of spdk_nvme_perf's usage() and getopt table.
type spdkOption struct {
	short string // letter, or "" for long-only options
	long  string
	value string // the value's name; "" for switches
	treat treatment
	// why is the notice or refusal text; for implemented options, what nvmeperf does.
	why string
}

const tcpLater = "not in nvmeperf's NVMe/TCP host (plain TCP through Go's sockets)"

// spdkOptions is spdk_nvme_perf's option list (app/spdk_nvme_perf/perf.c, usage() and
// g_perf_cmdline_opts), in usage() order.
var spdkOptions = []spdkOption{
	{"q", "io-depth", "N", implemented, "I/Os in flight per namespace per core"},
	{"o", "io-size", "BYTES", implemented, "bytes per I/O (4096, 4k, 128k)"},
	{"w", "io-pattern", "PATTERN", implemented, "read, write, randread, randwrite, rw, randrw"},
	{"M", "rwmixread", "PCT", implemented, "read share of rw/randrw; with other patterns SPDK's 'Ignoring -M' notice"},
	{"t", "time", "SEC", implemented, "seconds to measure (fractions accepted)"},
	{"a", "warmup-time", "SEC", implemented, "warm-up seconds, discarded"},
	{"c", "core-mask", "MASK", implemented, "hex mask or [list] of cores"},
	{"r", "transport", "TRID", implemented, "transport ID: trtype PCIe, TCP and sim; RDMA and vfio-user are parsed and then fail with \"not supported yet\""},
	{"", "use-every-core", "", implemented, "every core drives every namespace"},
	{"", "io-queue-size", "N", implemented, "I/O queue entries (clamped to MQES+1)"},
	{"O", "io-unit-size", "BYTES", otherBranch, "split each I/O into io-unit-size commands"},
	{"P", "num-qpairs", "N", implemented, "queue pairs per namespace per core; above -q each I/O goes to the next pair in turn"},
	{"U", "num-unused-qpairs", "N", implemented, "extra I/O queue pairs created per controller and never used"},
	{"A", "buffer-alignment", "BYTES", implemented, "I/O buffer alignment (power of two)"},
	{"s", "hugemem-size", "MB", notApplicable, "nvmeperf maps 2 MiB hugepages for DMA as it needs them, with no fixed reservation to size"},
	{"g", "mem-single-seg", "", notApplicable, "DPDK memory-segment layout; nvmeperf does not use DPDK"},
	{"C", "max-completion-per-poll", "N", implemented, "most completions one poll reaps"},
	{"i", "shmem-grp-id", "ID", notApplicable, "DPDK multi-process shared-memory group; nvmeperf runs as one process"},
	{"d", "number-ios", "N|PCT%", implemented, "stop after N I/Os per namespace per core, or N% of the namespace"},
	{"e", "metadata", "FMT", otherBranch, "protection information: PRACT and PRCHK"},
	{"F", "zipf", "THETA", implemented, "zipf-distributed random offsets"},
	{"R", "enable-uring", "", implemented, "kernel devices always go through io_uring in nvmeperf"},
	{"", "iova-mode", "va|pa", notApplicable, "DPDK IOVA mode; nvmeperf uses VFIO IOVAs, or physical addresses under uio"},
	{"", "no-huge", "", notApplicable, "DPDK without hugepages; nvmeperf needs hugepages only for userspace PCIe DMA, none for sim or kernel devices"},
	{"", "enforce-numa", "", notApplicable, "DPDK NUMA-restricted hugepage allocation"},
	{"", "fua", "", implemented, "Force Unit Access on every read and write"},
	{"", "vfio-vf-token", "UUID", refused, "nvmeperf cannot hand a VF token to vfio-pci; bind the VF without a token, or use the PF"},
	{"", "env-context", "CTX", notApplicable, "opaque DPDK environment context"},
	{"y", "tpoint-group-mask", "MASK", notApplicable, "SPDK tracepoints do not exist in nvmeperf; --output-format json records the run"},
	{"b", "allowed-pci-addr", "ADDR", implemented, "only these local PCIe controllers (repeatable); sim and kernel targets are not PCI devices"},
	{"V", "enable-vmd", "", refused, "nvmeperf does not enumerate drives behind a VMD; disable VMD for them (BIOS) and name them with -r 'trtype:PCIe traddr:...'"},
	{"D", "disable-sq-cmb", "", implemented, "keep I/O submission queues in host memory; by default they go to the controller memory buffer when CMBSZ.SQS allows (same as --no-sq-cmb)"},
	{"E", "enable-interrupt", "", refused, "completion interrupts are not supported: nvmeperf polls; for interrupt-driven kernel I/O name /dev/nvmeXnY (without --hipri)"},
	{"", "disable-sq-flow-control", "", notApplicable, "nvmeperf's queues always hold submissions within the queue size"},
	{"S", "default-sock-impl", "IMPL", notApplicable, "socket implementation for NVMe/TCP; " + tcpLater},
	{"", "disable-ktls", "", refused, "TLS for NVMe/TCP; " + tcpLater},
	{"", "enable-ktls", "", refused, "TLS for NVMe/TCP; " + tcpLater},
	{"", "tls-version", "N", refused, "TLS for NVMe/TCP; " + tcpLater},
	{"", "psk-path", "PATH", refused, "TLS PSK for NVMe/TCP; " + tcpLater},
	{"", "psk-identity", "ID", refused, "TLS PSK for NVMe/TCP; " + tcpLater},
	{"", "dhchap-key", "PATH", refused, "DH-HMAC-CHAP authentication for NVMe-oF; " + tcpLater},
	{"", "dhchap-ctrlr-key", "PATH", refused, "DH-HMAC-CHAP authentication for NVMe-oF; " + tcpLater},
	{"", "zerocopy-threshold", "BYTES", notApplicable, "MSG_ZEROCOPY for NVMe/TCP sockets; " + tcpLater},
	{"", "zerocopy-threshold-sock-impl", "IMPL", notApplicable, "MSG_ZEROCOPY for NVMe/TCP sockets; " + tcpLater},
	{"z", "disable-zcopy", "IMPL", notApplicable, "zero-copy send for NVMe/TCP sockets; " + tcpLater},
	{"Z", "enable-zcopy", "IMPL", notApplicable, "zero-copy send for NVMe/TCP sockets; " + tcpLater},
	{"k", "keepalive", "MS", implemented, "keep alive timeout of NVMe/TCP controllers in ms (default 10000, as SPDK; 0 disables it); Keep Alive goes every half of it; PCIe and sim controllers need none"},
	{"H", "enable-tcp-hdgst", "", implemented, "NVMe/TCP header digest (CRC32C) on every connection"},
	{"I", "enable-tcp-ddgst", "", implemented, "NVMe/TCP data digest (CRC32C) on every connection"},
	{"", "transport-tos", "N", refused, "RDMA-only option: nvmeperf has no RDMA transport; use a local PCIe controller or trtype:sim"},
	{"", "rdma-srq-size", "N", refused, "RDMA-only option: nvmeperf has no RDMA transport; use a local PCIe controller or trtype:sim"},
	{"", "log-level", "LEVEL", notApplicable, "SPDK log levels; nvmeperf prints notices on stderr (--quiet silences them)"},
	{"L", "enable-sw-latency-tracking", "", implemented, "-L latency summary, -LL also the histogram"},
	{"l", "enable-ssd-latency-tracking", "", refused, "Intel vendor latency log pages are not read; use -L or -LL for per-I/O latency measured by nvmeperf"},
	{"N", "no-shst-notification", "", implemented, "detach by disabling the controller (CC.EN=0) instead of a shutdown notification"},
	{"Q", "continue-on-error", "N", implemented, "keep going on I/O errors, log every Nth (bare -Q: every error)"},
	{"T", "logflag", "FLAG", notApplicable, "SPDK debug log flags; nvmeperf has none"},
	{"m", "cpu-usage", "", implemented, "busy share of the used cores: live on the progress line (with each worker thread's own CPU), and a summary on stderr"},
	{"", "transport-stats", "", implemented, "per (core, namespace) queue counters after the run, in SPDK's PCIe layout; always in the JSON"},
	{"h", "help", "", implemented, "help"},
	{"v", "help-full", "", implemented, "the full help (same as --help)"},
}

// compatOpts holds the spdk_nvme_perf options nvmeperf's own flags do not cover.
type compatOpts struct {
	unusedQPairs   int
	cpuUsage       bool
	noShutdown     bool
	disableSQCMB   bool
	keepAliveMS    int
	headerDigest   bool
	dataDigest     bool
	transportStats bool
	allowedPCI     []string
	everyCore      bool
	fua            bool
	enableURing    bool
	helpFull       bool
	quietCount     int // -Q N
	numIOsPercent  int // -d N%
	jsonOutput     string

	// accepted-with-notice and refused options land here, by long name.
	ignoredValues map[string]*string
	ignoredBools  map[string]*bool

	ioErrors atomic.Uint64 // -Q: failed I/Os seen, for rate-limited logging
	usage    processUsage  // CPU used during the run, for fio-json
}

// Hidden flags the argument rewriting below targets.
const (
	flagQuietCount    = "continue-on-error-count"
	flagNumIOsPercent = "number-ios-percent"
)

// registerCompatFlags adds spdk_nvme_perf's remaining options to f.
func (a *app) registerCompatFlags(f *pflag.FlagSet) {
	c := &a.compat
	c.ignoredValues = map[string]*string{}
	c.ignoredBools = map[string]*bool{}
	f.IntVarP(&c.unusedQPairs, "num-unused-qpairs", "U", 0, "extra I/O queue pairs to create per controller and leave unused")
	f.BoolVarP(&c.cpuUsage, "cpu-usage", "m", false, "show how busy the used cores are (live on a terminal, and a summary on stderr)")
	f.BoolVarP(&c.noShutdown, "no-shst-notification", "N", false, "detach controllers without a shutdown notification (CC.EN=0 instead of CC.SHN)")
	f.BoolVarP(&c.disableSQCMB, "disable-sq-cmb", "D", false, "keep I/O submission queues in host memory even when the controller memory buffer can hold them (same as --no-sq-cmb)")
	f.IntVarP(&c.keepAliveMS, "keepalive", "k", 10000, "keep alive timeout of NVMe/TCP controllers in ms (0: none)")
	f.BoolVarP(&c.headerDigest, "enable-tcp-hdgst", "H", false, "NVMe/TCP header digests")
	f.BoolVarP(&c.dataDigest, "enable-tcp-ddgst", "I", false, "NVMe/TCP data digests")
	f.BoolVar(&c.transportStats, "transport-stats", false, "print per-core, per-namespace queue counters (polls, idle polls, doorbells) after the run")
	f.StringArrayVarP(&c.allowedPCI, "allowed-pci-addr", "b", nil, "use only this local PCIe controller (repeatable), e.g. -b 0000:d8:00.0")
	f.BoolVar(&c.everyCore, "use-every-core", false, "every core drives every namespace (default: namespaces are spread over cores)")
	f.BoolVar(&c.fua, "fua", false, "set Force Unit Access on every read and write")
	f.BoolVarP(&c.enableURing, "enable-uring", "R", false, "use io_uring for kernel devices (always the case in nvmeperf)")
	f.BoolVarP(&c.helpFull, "help-full", "v", false, "full help (same as --help)")
	f.StringVar(&c.jsonOutput, "json-output", "", "with --output-format text,json or text,fio-json: the file the JSON goes to")
	f.IntVar(&c.quietCount, flagQuietCount, 1, "log every Nth I/O error with -Q (spdk_nvme_perf's -Q N)")
	f.IntVar(&c.numIOsPercent, flagNumIOsPercent, 0, "stop after this percent of the namespace (spdk_nvme_perf's -d N%)")
	_ = f.MarkHidden(flagQuietCount)
	_ = f.MarkHidden(flagNumIOsPercent)
	for _, o := range spdkOptions {
		if o.treat != notApplicable && o.treat != refused {
			continue
		}
		help := "spdk_nvme_perf option: " + o.why
		if o.value == "" {
			b := new(bool)
			c.ignoredBools[o.long] = b
			f.BoolVarP(b, o.long, o.short, false, help)
		} else {
			s := new(string)
			c.ignoredValues[o.long] = s
			f.StringVarP(s, o.long, o.short, "", help)
		}
		_ = f.MarkHidden(o.long)
	}
}

// normalizeArgs rewrites the spdk_nvme_perf spellings pflag cannot read as SPDK means
// them: -Q N (a count, where nvmeperf's -Q is a switch), -d N% (a share of the
// namespace) and unambiguous prefixes of long options (--transport-stat), which
// getopt_long accepts. Anything that would be misread is a usage error.
func normalizeArgs(f *pflag.FlagSet, args []string) ([]string, error) {
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		arg := args[i]
		next := func() (string, bool) {
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", false
		}
		switch {
		case arg == "--":
			return append(out, args[i:]...), nil
		case strings.HasPrefix(arg, "--"):
			name, val, hasVal := strings.Cut(arg[2:], "=")
			if f.Lookup(name) == nil {
				if full := spdkLongPrefix(name); full != "" {
					name = full
					arg = "--" + name
					if hasVal {
						arg += "=" + val
					}
				}
			}
			switch name {
			case "continue-on-error":
				n, consumed, err := quietCount("--continue-on-error", val, hasVal, next)
				if err != nil {
					return nil, err
				}
				out = append(out, "--continue-on-error", "--"+flagQuietCount+"="+strconv.Itoa(n))
				i += consumed
				continue
			case "number-ios":
				v, consumed := val, 0
				if !hasVal {
					v, _ = next()
					consumed = 1
				}
				if strings.HasSuffix(v, "%") {
					pct, err := percentArg("--number-ios", v)
					if err != nil {
						return nil, err
					}
					out = append(out, "--"+flagNumIOsPercent+"="+strconv.Itoa(pct))
					i += consumed
					continue
				}
			}
			out = append(out, arg)
			if fl := f.Lookup(name); fl != nil && !hasVal && fl.NoOptDefVal == "" {
				if v, ok := next(); ok {
					out = append(out, v)
					i++
				}
			}
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			// A group of shorthands: walk it until one takes a value.
			rewritten := false
			for k := 1; k < len(arg); k++ {
				ch := arg[k : k+1]
				rest := arg[k+1:]
				switch ch {
				case "Q":
					inline := strings.TrimPrefix(rest, "=")
					n, consumed, err := quietCount("-Q", inline, inline != "", next)
					if err != nil {
						return nil, err
					}
					if k > 1 {
						out = append(out, arg[:k])
					}
					out = append(out, "-Q", "--"+flagQuietCount+"="+strconv.Itoa(n))
					i += consumed
					rewritten = true
				case "d":
					v, consumed := strings.TrimPrefix(rest, "="), 0
					if v == "" {
						v, _ = next()
						consumed = 1
					}
					if strings.HasSuffix(v, "%") {
						pct, err := percentArg("-d", v)
						if err != nil {
							return nil, err
						}
						if k > 1 {
							out = append(out, arg[:k])
						}
						out = append(out, "--"+flagNumIOsPercent+"="+strconv.Itoa(pct))
						i += consumed
						rewritten = true
					}
				}
				if rewritten {
					break
				}
				fl := f.ShorthandLookup(ch)
				if fl == nil || fl.NoOptDefVal != "" {
					continue // a switch (or unknown: pflag reports it)
				}
				if rest == "" {
					// The value is the next argument.
					out = append(out, arg)
					if v, ok := next(); ok {
						out = append(out, v)
						i++
					}
					rewritten = true
				}
				break
			}
			if !rewritten {
				out = append(out, arg)
			}
		default:
			out = append(out, arg)
		}
	}
	return out, nil
}

// quietCount reads -Q's count: inline (-Q100, -Q=100, --continue-on-error=100) or the
// next argument when it is a number. A bare -Q before another flag or at the end keeps
// nvmeperf's old switch meaning, count 1 (SPDK's default). A bare -Q before anything
// else is refused: it used to make that word a file target.
func quietCount(flag, inline string, hasInline bool, next func() (string, bool)) (int, int, error) {
	bad := func(v string) error {
		return usagef("%s %q: %s takes a count as in spdk_nvme_perf: keep going on I/O errors and log every Nth (-Q 1 logs each, -Q 100 every 100th)", flag, v, flag)
	}
	if hasInline {
		n, err := strconv.Atoi(inline)
		if err != nil || n < 1 {
			return 0, 0, bad(inline)
		}
		return n, 0, nil
	}
	v, ok := next()
	if !ok || (strings.HasPrefix(v, "-") && len(v) > 1) {
		return 1, 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, 0, bad(v)
	}
	return n, 1, nil
}

func percentArg(flag, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil || n < 1 {
		return 0, usagef("%s %q: a share of the namespace is a whole number of percent, at least 1, e.g. -d 50%% (more than 100%% goes around again)", flag, v)
	}
	return n, nil
}

// spdkLongPrefix expands an abbreviated spdk_nvme_perf long option as getopt_long does:
// the one option it is a prefix of, or "" when none or several.
func spdkLongPrefix(name string) string {
	if name == "" {
		return ""
	}
	found := ""
	for _, o := range spdkOptions {
		if strings.HasPrefix(o.long, name) {
			if found != "" && found != o.long {
				return ""
			}
			found = o.long
		}
	}
	return found
}

// compatBefore runs before the options are validated: refusals, notices and checks of
// the spdk_nvme_perf options.
func (a *app) compatBefore() error {
	c := &a.compat
	o := &a.opts
	for _, opt := range spdkOptions {
		if (opt.treat != notApplicable && opt.treat != refused) || !o.set(opt.long) {
			continue
		}
		name := "--" + opt.long
		if opt.short != "" {
			name = "-" + opt.short + " (" + name + ")"
		}
		if opt.treat == refused {
			return usagef("%s is not supported: %s", name, opt.why)
		}
		a.notice("%s does not apply to nvmeperf, ignored: %s", name, opt.why)
	}
	if o.set("rwmixread") && o.set("io-pattern") {
		if pat, err := workload.ParsePattern(strings.ToLower(o.pattern)); err == nil && !pat.Mixed() {
			// spdk_nvme_perf's own wording.
			fmt.Fprintln(a.stderr, "Ignoring -M (--rwmixread) option... Please use -M option only when using rw or randrw.")
		}
	}
	if o.set("num-unused-qpairs") && (c.unusedQPairs < 0 || c.unusedQPairs > 1024) {
		return usagef("-U %d: unused queue pairs per controller must be 0..1024", c.unusedQPairs)
	}
	if c.keepAliveMS < 0 || c.keepAliveMS > 3600000 {
		return usagef("-k %d: keep alive timeout in ms must be 0 (none) to 3600000", c.keepAliveMS)
	}
	if o.set(flagNumIOsPercent) {
		if o.set("number-ios") {
			return usagef("-d given both as a count and as a percent: pick one")
		}
		if !o.set("time") {
			return usagef("-d %d%%: -t (seconds) is required with it, as in spdk_nvme_perf, e.g. -t 60", c.numIOsPercent)
		}
	}
	for i, addr := range c.allowedPCI {
		id, err := trid.Parse("trtype:PCIe traddr:" + addr)
		if err != nil {
			return usagef("-b %q: not a PCI address (want domain:bus:device.function, e.g. 0000:d8:00.0)", addr)
		}
		c.allowedPCI[i] = id.TrAddr
	}
	if len(c.allowedPCI) > 0 {
		for _, s := range o.trids {
			if id, err := trid.Parse(s); err == nil && id.Type == trid.PCIe && !a.pciAllowed(id.TrAddr) {
				return usagef("-r %q: %s is not among the -b allowed PCI addresses (%s)", s, id.TrAddr, strings.Join(c.allowedPCI, ", "))
			}
		}
	}
	format := strings.ToLower(o.outputFormat)
	if strings.Contains(format, ",") && validOutputFormat(format) && c.jsonOutput == "" {
		return usagef("--output-format %s: the JSON needs a file: add --json-output FILE (the text goes to stdout or --output)", o.outputFormat)
	}
	if c.jsonOutput != "" && !strings.Contains(format, ",") {
		return usagef("--json-output %s: only with --output-format text,json or text,fio-json", c.jsonOutput)
	}
	return nil
}

// validOutputFormat accepts text, json, fio-json, and text plus one JSON kind
// (fio's --output-format=normal,json).
func validOutputFormat(f string) bool {
	switch f {
	case "text", "json", "fio-json", "text,json", "text,fio-json":
		return true
	}
	return false
}

// pciAllowed applies -b: with no list every address is allowed.
func (a *app) pciAllowed(addr string) bool {
	if len(a.compat.allowedPCI) == 0 {
		return true
	}
	for _, p := range a.compat.allowedPCI {
		if strings.EqualFold(p, addr) {
			return true
		}
	}
	return false
}

// compatDriverOptions applies -N, -D, -k, -H and -I to controller bring-up.
func (a *app) compatDriverOptions(o *driver.Options) {
	o.NVMe.NoShutdownNotification = a.compat.noShutdown
	o.NVMe.NoSQInCMB = o.NVMe.NoSQInCMB || a.compat.disableSQCMB
	o.NVMe.KeepAlive = time.Duration(a.compat.keepAliveMS) * time.Millisecond
	o.TCPDigests.Header, o.TCPDigests.Data = a.compat.headerDigest, a.compat.dataDigest
}

// openUnusedQPairs creates -U queue pairs on a controller; they stay idle and are
// deleted when the controller detaches.
func (a *app) openUnusedQPairs(c *driver.Controller) error {
	for i := 0; i < a.compat.unusedQPairs; i++ {
		if _, err := c.NVMe.NewIOQPair(nvme.QPairOptions{}); err != nil {
			return usagef("-U %d: creating unused queue pair %d on %s: %v (the controller grants %d I/O queues)",
				a.compat.unusedQPairs, i+1, c.ID, err, c.NVMe.IOQueues())
		}
	}
	return nil
}

// isKernel tells io_uring targets (kernel devices and files) from NVMe namespaces.
func isKernel(transport string) bool { return strings.HasPrefix(transport, "io_uring") }

// fileExists reports whether path names something on disk.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
