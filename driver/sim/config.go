package sim

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Model selects how the simulated media times its commands.
type Model string

// Device models.
const (
	// ModelNull completes every command as soon as it is fetched, so a run measures the
	// host path (driver, queues, doorbells) and nothing else.
	ModelNull Model = "null"
	// ModelNAND times commands like a flash SSD: dies with per-operation busy time and a
	// write cache drained by background programming. See NANDConfig.
	ModelNAND Model = "nand"
)

// StorePolicy says what the simulator does with written data.
type StorePolicy string

// Store policies.
const (
	// StoreAuto keeps data (StoreMemory) when all namespaces together fit in MemLimit,
	// and discards it (StoreDiscard) otherwise.
	StoreAuto StorePolicy = "auto"
	// StoreMemory keeps every written block so that it reads back unchanged; New fails
	// when the namespaces do not fit in MemLimit.
	StoreMemory StorePolicy = "mem"
	// StoreDiscard validates and counts writes but keeps nothing, and reads move no data
	// (the host buffer is left as it was). It costs no memory and no copying.
	StoreDiscard StorePolicy = "discard"
)

// NANDConfig shapes the nand model.
type NANDConfig struct {
	ReadLatency    time.Duration // die busy time of one page read (readlat)
	WriteLatency   time.Duration // time to accept a write into the write cache (writelat)
	ProgramLatency time.Duration // die busy time of programming one page (proglat)
	Channels       int           // channels (channels)
	DiesPerChannel int           // dies on each channel (dies)
	PageSize       uint32        // flash page size in bytes, a power of two (nandpage)
	WriteCache     uint64        // write cache size in bytes (wcache)
}

// Config describes a simulated controller. DefaultConfig gives sensible values; keys in
// parentheses are the ParseOptions names.
type Config struct {
	Namespaces    int           // number of namespaces, NSIDs 1..Namespaces (namespaces)
	NamespaceSize uint64        // bytes per namespace, a multiple of LBASize (nssize)
	LBASize       uint32        // logical block size: 512 or 4096 (lbasize)
	MQES          uint16        // CAP.MQES: largest queue size, 0's based as in the spec (mqes)
	MDTS          uint8         // Identify MDTS: max transfer is 4 KiB << MDTS, 0 = no limit (mdts)
	IOQueues      int           // I/O queue pairs the controller offers (ioqueues)
	Model         Model         // media model (model)
	Inline        bool          // run the model on the host thread that rings a doorbell, no device thread (mode=inline)
	NAND          NANDConfig    // nand model parameters
	Store         StorePolicy   // what happens to written data (store)
	MemLimit      uint64        // most bytes the data store may use (memlimit)
	ReadyDelay    time.Duration // time from CC.EN=1 to CSTS.RDY=1, and back (rdydelay)
	Timeout       uint8         // CAP.TO in 500 ms units (to)
	CPUs          []int         // CPUs the device thread is pinned to; empty = not pinned (cpus)
	Faults        FaultConfig   // fault injection armed at creation (failnth, faillba, ...)
	Format        FormatConfig  // metadata and protection information (ms, mset, pi, pil)

	// Register-level behaviour and strictness (docs/simulator.md, "Spec checks").
	DSTRD         uint8         // CAP.DSTRD: doorbells are 4 << DSTRD bytes apart (dstrd)
	MPSMIN        uint8         // CAP.MPSMIN: smallest memory page is 4 KiB << MPSMIN (mpsmin)
	Regs32        bool          // registers take 32-bit accesses only; wider ones are violations (regs32)
	Strict        bool          // a spec violation also sets CSTS.CFS, so the host fails loudly (strict)
	RTD3E         uint32        // Identify RTD3E: RTD3 entry latency in microseconds (rtd3e)
	ShutdownDelay time.Duration // time from CC.SHN to CSTS.SHST complete (shndelay)
	// ShadowDoorbell offers Doorbell Buffer Config (OACS bit 8) and honours it (shadowdb)
	ShadowDoorbell bool
	// CMB is the size in bytes of a controller memory buffer that can hold I/O
	// submission queues (cmb; cmb.go), 0 for none: a multiple of 4 KiB up to 1 GiB.
	CMB uint64
	// CMBLegacy publishes the CMB the NVMe 1.3 way (cmblegacy; cmb.go): CAP.CMBS clear,
	// no CMBMSC, the buffer decoded at its BAR address from the start, 4 KiB into BAR 2.
	CMBLegacy bool
}

// DefaultConfig is one 1 GiB namespace of 4 KiB blocks on a null-model controller with
// 64 I/O queue pairs of up to 1024 entries and 128 KiB transfers.
func DefaultConfig() Config {
	return Config{
		Namespaces:    1,
		NamespaceSize: 1 << 30,
		LBASize:       4096,
		MQES:          1023,
		MDTS:          5,
		IOQueues:      64,
		Model:         ModelNull,
		NAND: NANDConfig{
			ReadLatency:    80 * time.Microsecond,
			WriteLatency:   20 * time.Microsecond,
			ProgramLatency: 600 * time.Microsecond,
			Channels:       8,
			DiesPerChannel: 4,
			PageSize:       16 << 10,
			WriteCache:     64 << 20,
		},
		Store:         StoreAuto,
		MemLimit:      1 << 30,
		ReadyDelay:    100 * time.Microsecond,
		Timeout:       4,
		ShutdownDelay: 100 * time.Microsecond,
	}
}

// Limits on configuration values.
const (
	maxNamespaces = 1024 // the Identify active namespace list holds 1024 NSIDs
	maxIOQueues   = 4096
	maxMDTS       = 16
	maxReadyDelay = 10 * time.Second
	maxLatency    = time.Second
	maxDies       = 4096
	maxDSTRD      = 8 // doorbells 1 KiB apart; enough to find any stride bug
	maxMPSMIN     = 4 // 64 KiB pages
	maxShutdown   = 5 * time.Minute
	maxCMB        = 1 << 30
)

// ParseOptions builds a Config from DefaultConfig and transport ID keys (lower case).
// Unknown keys and bad values are errors naming the key, the value and what is accepted.
func ParseOptions(opts map[string]string) (Config, error) {
	cfg := DefaultConfig()
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report errors in a stable order
	for _, k := range keys {
		if err := cfg.set(k, opts[k]); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func badValue(key, val, want string) error {
	return fmt.Errorf("sim: key %q: value %q is not accepted (want %s)", key, val, want)
}

func (cfg *Config) set(key, val string) error {
	if ok, err := cfg.setFault(key, val); ok {
		return err
	}
	if ok, err := cfg.setFormat(key, val); ok {
		return err
	}
	switch key {
	case "namespaces":
		n, err := parseInt(val, 1, maxNamespaces)
		if err != nil {
			return badValue(key, val, fmt.Sprintf("an integer from 1 to %d", maxNamespaces))
		}
		cfg.Namespaces = n
	case "nssize":
		n, err := ParseSize(val)
		if err != nil || n == 0 {
			return badValue(key, val, "a size in bytes with optional suffix k, m, g or t, such as 1g")
		}
		cfg.NamespaceSize = n
	case "lbasize":
		switch val {
		case "512":
			cfg.LBASize = 512
		case "4096", "4k", "4K":
			cfg.LBASize = 4096
		default:
			return badValue(key, val, "512 or 4096")
		}
	case "mqes":
		n, err := parseInt(val, 1, 65535)
		if err != nil {
			return badValue(key, val, "the largest queue size, 0's based, from 1 to 65535")
		}
		cfg.MQES = uint16(n)
	case "mdts":
		n, err := parseInt(val, 0, maxMDTS)
		if err != nil {
			return badValue(key, val, fmt.Sprintf("an exponent from 0 (no limit) to %d; transfers are 4 KiB << mdts", maxMDTS))
		}
		cfg.MDTS = uint8(n)
	case "ioqueues":
		n, err := parseInt(val, 1, maxIOQueues)
		if err != nil {
			return badValue(key, val, fmt.Sprintf("an integer from 1 to %d", maxIOQueues))
		}
		cfg.IOQueues = n
	case "model":
		switch Model(val) {
		case ModelNull, ModelNAND:
			cfg.Model = Model(val)
		default:
			return badValue(key, val, "null or nand")
		}
	case "readlat", "writelat", "proglat":
		d, err := time.ParseDuration(val)
		if err != nil || d <= 0 || d > maxLatency {
			return badValue(key, val, "a duration above 0 and at most 1s, such as 80us")
		}
		switch key {
		case "readlat":
			cfg.NAND.ReadLatency = d
		case "writelat":
			cfg.NAND.WriteLatency = d
		default:
			cfg.NAND.ProgramLatency = d
		}
	case "channels", "dies":
		n, err := parseInt(val, 1, maxDies)
		if err != nil {
			return badValue(key, val, fmt.Sprintf("an integer from 1 to %d", maxDies))
		}
		if key == "channels" {
			cfg.NAND.Channels = n
		} else {
			cfg.NAND.DiesPerChannel = n
		}
	case "nandpage":
		n, err := ParseSize(val)
		if err != nil || n < 4096 || n > 1<<20 || n&(n-1) != 0 {
			return badValue(key, val, "a power of two from 4k to 1m")
		}
		cfg.NAND.PageSize = uint32(n)
	case "wcache":
		n, err := ParseSize(val)
		if err != nil {
			return badValue(key, val, "a size in bytes with optional suffix k, m, g or t; 0 = no write cache")
		}
		cfg.NAND.WriteCache = n
	case "store":
		switch StorePolicy(val) {
		case StoreAuto, StoreMemory, StoreDiscard:
			cfg.Store = StorePolicy(val)
		default:
			return badValue(key, val, "auto, mem or discard")
		}
	case "memlimit":
		n, err := ParseSize(val)
		if err != nil {
			return badValue(key, val, "a size in bytes with optional suffix k, m, g or t")
		}
		cfg.MemLimit = n
	case "rdydelay":
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 || d > maxReadyDelay {
			return badValue(key, val, "a duration from 0 to 10s, such as 100us")
		}
		cfg.ReadyDelay = d
	case "to":
		n, err := parseInt(val, 1, 255)
		if err != nil {
			return badValue(key, val, "CAP.TO in 500 ms units, from 1 to 255")
		}
		cfg.Timeout = uint8(n)
	case "dstrd":
		n, err := parseInt(val, 0, maxDSTRD)
		if err != nil {
			return badValue(key, val, fmt.Sprintf("CAP.DSTRD from 0 to %d (doorbells 4 << dstrd bytes apart)", maxDSTRD))
		}
		cfg.DSTRD = uint8(n)
	case "mpsmin":
		n, err := parseInt(val, 0, maxMPSMIN)
		if err != nil {
			return badValue(key, val, fmt.Sprintf("CAP.MPSMIN from 0 to %d (memory page 4 KiB << mpsmin)", maxMPSMIN))
		}
		cfg.MPSMIN = uint8(n)
	case "regs32", "strict", "shadowdb", "cmblegacy":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return badValue(key, val, "1 or 0 (true or false)")
		}
		switch key {
		case "regs32":
			cfg.Regs32 = b
		case "strict":
			cfg.Strict = b
		case "cmblegacy":
			cfg.CMBLegacy = b
		default:
			cfg.ShadowDoorbell = b
		}
	case "cmb":
		n, err := ParseSize(val)
		if err != nil || n%4096 != 0 || n > maxCMB {
			return badValue(key, val, "a size in bytes with optional suffix k, m or g: a multiple of 4k up to 1g, 0 = no controller memory buffer")
		}
		cfg.CMB = n
	case "rtd3e":
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 || d > time.Duration(^uint32(0))*time.Microsecond {
			return badValue(key, val, "a duration from 0 to 4294s, such as 8s (Identify RTD3E, kept in microseconds)")
		}
		cfg.RTD3E = uint32(d / time.Microsecond)
	case "shndelay":
		d, err := time.ParseDuration(val)
		if err != nil || d < 0 || d > maxShutdown {
			return badValue(key, val, "a duration from 0 to 5m, such as 100us")
		}
		cfg.ShutdownDelay = d
	case "cpus":
		cpus, err := ParseCPUList(val)
		if err != nil {
			return badValue(key, val, "a CPU list such as 3 or 2,5 or 4-7")
		}
		cfg.CPUs = cpus
	case "mode":
		switch val {
		case "thread":
			cfg.Inline = false
		case "inline":
			cfg.Inline = true
		default:
			return badValue(key, val, "thread (a device thread polls the doorbells) or inline (the doorbell write runs the model on the worker's thread)")
		}
	default:
		return fmt.Errorf("sim: unknown key %q (accepted: namespaces, nssize, lbasize, mqes, mdts, ioqueues, model, readlat, writelat, proglat, channels, dies, nandpage, wcache, store, memlimit, rdydelay, to, cpus, ms, mset, pi, pil, dstrd, mpsmin, regs32, strict, shadowdb, cmb, cmblegacy, rtd3e, shndelay, failnth, faillba, failnsid, failstatus, faildelay, fatalafter, removeafter, aerafter, failmore, mode)", key)
	}
	return nil
}

// Validate checks every field, naming the first bad one.
func (cfg *Config) Validate() error {
	switch {
	case cfg.Namespaces < 1 || cfg.Namespaces > maxNamespaces:
		return fmt.Errorf("sim: Namespaces %d is not accepted (want 1 to %d)", cfg.Namespaces, maxNamespaces)
	case cfg.LBASize != 512 && cfg.LBASize != 4096:
		return fmt.Errorf("sim: LBASize %d is not accepted (want 512 or 4096)", cfg.LBASize)
	case cfg.NamespaceSize == 0 || cfg.NamespaceSize%uint64(cfg.LBASize) != 0:
		return fmt.Errorf("sim: NamespaceSize %d is not accepted (want a non-zero multiple of the LBA size %d)", cfg.NamespaceSize, cfg.LBASize)
	case cfg.MQES < 1:
		return fmt.Errorf("sim: MQES %d is not accepted (want 1 to 65535, 0's based)", cfg.MQES)
	case cfg.MDTS > maxMDTS:
		return fmt.Errorf("sim: MDTS %d is not accepted (want 0 to %d)", cfg.MDTS, maxMDTS)
	case cfg.IOQueues < 1 || cfg.IOQueues > maxIOQueues:
		return fmt.Errorf("sim: IOQueues %d is not accepted (want 1 to %d)", cfg.IOQueues, maxIOQueues)
	case cfg.Model != ModelNull && cfg.Model != ModelNAND:
		return fmt.Errorf("sim: Model %q is not accepted (want null or nand)", cfg.Model)
	case cfg.Store != StoreAuto && cfg.Store != StoreMemory && cfg.Store != StoreDiscard:
		return fmt.Errorf("sim: Store %q is not accepted (want auto, mem or discard)", cfg.Store)
	case cfg.ReadyDelay < 0 || cfg.ReadyDelay > maxReadyDelay:
		return fmt.Errorf("sim: ReadyDelay %v is not accepted (want 0 to %v)", cfg.ReadyDelay, maxReadyDelay)
	case cfg.Timeout < 1:
		return fmt.Errorf("sim: Timeout %d is not accepted (want 1 to 255, in 500 ms units)", cfg.Timeout)
	case cfg.DSTRD > maxDSTRD:
		return fmt.Errorf("sim: DSTRD %d is not accepted (want 0 to %d)", cfg.DSTRD, maxDSTRD)
	case cfg.MPSMIN > maxMPSMIN:
		return fmt.Errorf("sim: MPSMIN %d is not accepted (want 0 to %d)", cfg.MPSMIN, maxMPSMIN)
	case cfg.ShutdownDelay < 0 || cfg.ShutdownDelay > maxShutdown:
		return fmt.Errorf("sim: ShutdownDelay %v is not accepted (want 0 to %v)", cfg.ShutdownDelay, maxShutdown)
	case cfg.CMB%4096 != 0 || cfg.CMB > maxCMB:
		return fmt.Errorf("sim: CMB %d is not accepted (want a multiple of 4096 up to %d)", cfg.CMB, maxCMB)
	case cfg.CMBLegacy && cfg.CMB == 0:
		return fmt.Errorf("sim: CMBLegacy without a CMB: give the buffer's size too (cmb:SIZE)")
	}
	if err := cfg.Format.validate(); err != nil {
		return err
	}
	if cfg.Inline {
		// Inline, the model runs only inside doorbell writes; a completion due later
		// would wait for a doorbell the host, waiting for it, never rings.
		switch {
		case cfg.Model == ModelNAND:
			return fmt.Errorf("sim: mode inline with model nand is not accepted (nand completes commands later, which needs the device thread: use mode=thread, the default)")
		case cfg.Faults.Delay > 0:
			return fmt.Errorf("sim: mode inline with faildelay %v is not accepted (a delayed completion needs the device thread: use mode=thread, the default)", cfg.Faults.Delay)
		case cfg.ShadowDoorbell:
			// A device that runs only inside register writes cannot pick up a tail the
			// host left in a shadow doorbell without ringing (after a freeze, say).
			return fmt.Errorf("sim: mode inline with shadowdb is not accepted (a shadow doorbell update that skips the register write needs the device thread to see it: use mode=thread, the default)")
		}
	}
	if cfg.Store == StoreMemory && cfg.totalBytes() > cfg.MemLimit {
		return fmt.Errorf("sim: Store %q needs %d bytes for %d namespaces of %d bytes, above MemLimit %d (raise memlimit or use store=discard)",
			cfg.Store, cfg.totalBytes(), cfg.Namespaces, cfg.NamespaceSize, cfg.MemLimit)
	}
	for _, cpu := range cfg.CPUs {
		if cpu < 0 || cpu >= 1024 {
			return fmt.Errorf("sim: CPUs entry %d is not accepted (want 0 to 1023)", cpu)
		}
	}
	if cfg.Model == ModelNAND {
		n := cfg.NAND
		switch {
		case n.ReadLatency <= 0 || n.ReadLatency > maxLatency:
			return fmt.Errorf("sim: NAND.ReadLatency %v is not accepted (want above 0, at most %v)", n.ReadLatency, maxLatency)
		case n.WriteLatency <= 0 || n.WriteLatency > maxLatency:
			return fmt.Errorf("sim: NAND.WriteLatency %v is not accepted (want above 0, at most %v)", n.WriteLatency, maxLatency)
		case n.ProgramLatency <= 0 || n.ProgramLatency > maxLatency:
			return fmt.Errorf("sim: NAND.ProgramLatency %v is not accepted (want above 0, at most %v)", n.ProgramLatency, maxLatency)
		case n.Channels < 1 || n.DiesPerChannel < 1 || n.Channels*n.DiesPerChannel > maxDies:
			return fmt.Errorf("sim: NAND.Channels %d × NAND.DiesPerChannel %d is not accepted (want each at least 1, product at most %d)", n.Channels, n.DiesPerChannel, maxDies)
		case n.PageSize < 4096 || n.PageSize > 1<<20 || n.PageSize&(n.PageSize-1) != 0:
			return fmt.Errorf("sim: NAND.PageSize %d is not accepted (want a power of two from 4096 to 1 MiB)", n.PageSize)
		}
	}
	return nil
}

func (cfg *Config) totalBytes() uint64 {
	hi, lo := bits.Mul64(uint64(cfg.Namespaces), cfg.NamespaceSize)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// storesData reports whether the effective policy keeps written data.
func (cfg *Config) storesData() bool {
	switch cfg.Store {
	case StoreMemory:
		return true
	case StoreAuto:
		return cfg.totalBytes() <= cfg.MemLimit
	}
	return false
}

// maxTransfer is the largest data transfer in bytes the controller accepts: MDTS is in
// units of the smallest memory page (CAP.MPSMIN).
func (cfg *Config) maxTransfer() uint64 {
	// NLB is a 16-bit field; interleaved metadata counts towards the transfer.
	limit := uint64(65536) * (uint64(cfg.LBASize) + uint64(cfg.Format.MetadataSize))
	if cfg.MDTS == 0 {
		return limit
	}
	return min(limit, uint64(4096)<<cfg.MPSMIN<<cfg.MDTS)
}

func parseInt(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("out of range")
	}
	return n, nil
}

// ParseSize reads a byte count such as "512", "4k", "64K", "1g" or "2TiB": suffixes k,
// m, g and t are powers of 1024, optionally followed by "b" or "ib".
func ParseSize(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "ib")
	t = strings.TrimSuffix(t, "b")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			shift = 10
		case 'm':
			shift = 20
		case 'g':
			shift = 30
		case 't':
			shift = 40
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sim: size %q: want a number with optional suffix k, m, g or t", s)
	}
	if shift > 0 && n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("sim: size %q overflows 64 bits", s)
	}
	return n << shift, nil
}

// ParseCPUList reads a Linux-style CPU list such as "3", "2,5" or "0-3,8".
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("sim: CPU list %q: bad entry %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("sim: CPU list %q: bad range %q", s, part)
			}
		}
		if b >= 1024 {
			return nil, fmt.Errorf("sim: CPU list %q: CPU %d is above 1023", s, b)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
