package workload

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

func TestParsePattern(t *testing.T) {
	for i, name := range []string{"read", "write", "randread", "randwrite", "rw", "randrw"} {
		p, err := ParsePattern(name)
		if err != nil || p != Pattern(i) || p.String() != name {
			t.Errorf("ParsePattern(%q) = %v, %v; want %v", name, p, err, Pattern(i))
		}
	}
	if p, err := ParsePattern("RandRead"); err != nil || p != RandRead {
		t.Errorf("ParsePattern is case-sensitive: %v %v", p, err)
	}
	_, err := ParsePattern("trim")
	if err == nil || !strings.Contains(err.Error(), "randrw") || !strings.Contains(err.Error(), `"trim"`) {
		t.Errorf("ParsePattern(trim) error %v: should name the value and list accepted ones", err)
	}
	random := map[Pattern]bool{RandRead: true, RandWrite: true, RandRW: true}
	mixed := map[Pattern]bool{RW: true, RandRW: true}
	for p := Read; p < numPatterns; p++ {
		if p.Random() != random[p] || p.Mixed() != mixed[p] {
			t.Errorf("%v: Random %v Mixed %v", p, p.Random(), p.Mixed())
		}
	}
	if Pattern(42).String() != "pattern(42)" {
		t.Errorf("unknown pattern string %q", Pattern(42).String())
	}
}

func validConfig() Config {
	return Config{Pattern: RandRead, IOSize: 4096, QueueDepth: 8, Duration: time.Second}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string // part of the error
	}{
		{"pattern", func(c *Config) { c.Pattern = 9 }, "pattern 9"},
		{"readpercent", func(c *Config) { c.Pattern = RandRW; c.ReadPercent = 101 }, "read percent 101"},
		{"iosize", func(c *Config) { c.IOSize = 0 }, "I/O size 0"},
		{"qd", func(c *Config) { c.QueueDepth = 0 }, "queue depth 0"},
		{"qpairs-neg", func(c *Config) { c.QPairsPerTarget = -1 }, "queue pairs per target -1"},
		{"duration", func(c *Config) { c.Duration = 0 }, "duration 0s"},
		{"warmup", func(c *Config) { c.Warmup = -1 }, "warm-up -1ns"},
		{"core", func(c *Config) { c.Cores = []int{-2} }, "core -2"},
		{"core-dup", func(c *Config) { c.Cores = []int{1, 1} }, "core 1: listed twice"},
		{"queuesize", func(c *Config) { c.QueueSize = -1 }, "queue size -1"},
		{"maxcompl", func(c *Config) { c.MaxCompletions = -1 }, "max completions -1"},
		{"doorbell", func(c *Config) { c.Doorbell = 7 }, "doorbell mode 7"},
		{"doorbell-n", func(c *Config) { c.Doorbell = target.DoorbellEveryN }, "doorbell N 0"},
		{"align", func(c *Config) { c.BufferAlign = 6 }, "buffer alignment 6"},
		{"align-small", func(c *Config) { c.BufferAlign = 2 }, "buffer alignment 2"},
		{"zipf-nan", func(c *Config) { c.ZipfTheta = math.NaN() }, "zipf theta NaN"},
		{"zipf-neg", func(c *Config) { c.ZipfTheta = -1 }, "zipf theta -1"},
		{"zipf-seq", func(c *Config) { c.Pattern = Read; c.ZipfTheta = 1 }, "only to random patterns"},
		{"verify", func(c *Config) { c.Verify = 5 }, "verify mode 5"},
		{"verify-ro-write", func(c *Config) { c.Verify = VerifyReadOnly; c.Pattern = RandRW; c.ReadPercent = 50 }, "writes are refused"},
		{"drain", func(c *Config) { c.DrainTimeout = -1 }, "drain timeout"},
	}
	for _, tc := range cases {
		c := validConfig()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "workload: ") {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	ok := []func(*Config){
		func(c *Config) { c.Duration = 0; c.NumIOs = 10 },
		func(c *Config) { c.Pattern = Read; c.ReadPercent = 500 }, // ignored for pure patterns
		func(c *Config) { c.Verify = VerifyReadOnly; c.Pattern = RW; c.ReadPercent = 100 },
		func(c *Config) { c.BufferAlign = 4 },
		func(c *Config) { c.ZipfTheta = 1.2 },
		func(c *Config) { c.Doorbell = target.DoorbellEveryN; c.DoorbellN = 4 },
	}
	for i, mod := range ok {
		c := validConfig()
		mod(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("ok case %d rejected: %v", i, err)
		}
	}
}
