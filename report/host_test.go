package report

import (
	"errors"
	"os"
	"runtime"
	"testing"
)

func TestCPUModel(t *testing.T) {
	cases := map[string]string{
		"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: other\n": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
		"processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n":             "BCM2835",
		"processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n":                                                                         "POWER9 (architected), altivec supported",
		"processor\t: 0\nBogoMIPS\t: 50.00\n": "",
		"":                                    "",
	}
	for in, want := range cases {
		if got := cpuModel(in); got != want {
			t.Errorf("cpuModel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostInfoFromSources(t *testing.T) {
	files := map[string]string{
		"/proc/sys/kernel/osrelease": "6.8.0-45-generic\n",
		"/proc/cpuinfo":              "model name\t: Example CPU\n",
	}
	readFile := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	h := hostInfo(func() (string, error) { return "bench-01", nil }, readFile)
	if h.Hostname != "bench-01" || h.Kernel != "6.8.0-45-generic" || h.CPUModel != "Example CPU" {
		t.Errorf("host = %+v", h)
	}
	if h.OS != runtime.GOOS || h.Arch != runtime.GOARCH || h.NumCPU != runtime.NumCPU() || h.GoVersion != runtime.Version() {
		t.Errorf("runtime fields = %+v", h)
	}
	// Nothing readable: best effort leaves those fields empty, no failure.
	none := hostInfo(func() (string, error) { return "", errors.New("no name") },
		func(string) ([]byte, error) { return nil, os.ErrPermission })
	if none.Hostname != "" || none.Kernel != "" || none.CPUModel != "" || none.OS == "" {
		t.Errorf("host without sources = %+v", none)
	}
}

func TestHostInfoThisMachine(t *testing.T) {
	h := HostInfo()
	if h.OS == "" || h.Arch == "" || h.NumCPU < 1 || h.GoVersion == "" {
		t.Errorf("HostInfo() = %+v: runtime fields missing", h)
	}
	if runtime.GOOS == "linux" && h.Kernel == "" {
		t.Errorf("HostInfo() on Linux has no kernel release: %+v", h)
	}
}
