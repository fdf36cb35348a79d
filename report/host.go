package report

import (
	"os"
	"runtime"
	"strings"
)

// HostInfo describes this machine, best effort: fields it cannot learn stay empty.
func HostInfo() Host {
	return hostInfo(os.Hostname, os.ReadFile)
}

// hostInfo takes its sources as functions so tests can feed fixed files.
func hostInfo(hostname func() (string, error), readFile func(string) ([]byte, error)) Host {
	h := Host{
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		NumCPU:    runtime.NumCPU(),
		GoVersion: runtime.Version(),
	}
	if name, err := hostname(); err == nil {
		h.Hostname = name
	}
	if b, err := readFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := readFile("/proc/cpuinfo"); err == nil {
		h.CPUModel = cpuModel(string(b))
	}
	return h
}

// cpuModel picks the processor name out of /proc/cpuinfo. x86 has "model name"; other
// architectures use different keys, so the first known one found wins in this order.
func cpuModel(cpuinfo string) string {
	fields := map[string]string{}
	for line := range strings.SplitSeq(cpuinfo, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		if _, seen := fields[key]; !seen {
			fields[key] = strings.TrimSpace(value)
		}
	}
	for _, key := range []string{"model name", "cpu model", "Hardware", "cpu", "Model"} {
		if v := fields[key]; v != "" {
			return v
		}
	}
	return ""
}

// normalized fills what a Host from before runs across hosts leaves zero: a process not
// told otherwise is rank 0 of a world of 1.
func (h Host) normalized() Host {
	if h.WorldSize == 0 {
		h.WorldSize = 1
	}
	return h
}
