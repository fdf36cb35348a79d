package workload

import (
	"math"
	"sort"
	"testing"
)

func TestSequentialWraps(t *testing.T) {
	// 10 full slots of 4 KiB and a partial one that must never be touched.
	o := newOffsets(offsetSequential, 10*4096+1000, 4096, 0)
	var r rng
	for i := 0; i < 25; i++ {
		if got, want := o.next(&r), uint64(i%10)*4096; got != want {
			t.Fatalf("I/O %d at %d, want %d", i, got, want)
		}
	}
}

func TestUniformCoversSlotsInRange(t *testing.T) {
	const slots = 64
	o := newOffsets(offsetUniform, slots*512+100, 512, 0)
	r := newRNG(1, 0, 0)
	hits := make([]int, slots)
	const n = 64000
	for i := 0; i < n; i++ {
		off := o.next(&r)
		if off%512 != 0 || off/512 >= slots {
			t.Fatalf("offset %d not aligned or out of range", off)
		}
		hits[off/512]++
	}
	for s, h := range hits {
		if h < n/slots/2 || h > n/slots*2 {
			t.Errorf("slot %d hit %d times, expected about %d", s, h, n/slots)
		}
	}
}

func TestScatterIsBijective(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 10, 97, 1000, 4096, 10007} {
		o := offsets{slots: n, permA: permMultiplier(n)}
		seen := make([]bool, n)
		for k := uint64(0); k < n; k++ {
			s := o.scatter(k)
			if s >= n || seen[s] {
				t.Fatalf("n=%d: rank %d maps to slot %d twice or out of range", n, k, s)
			}
			seen[s] = true
		}
	}
}

// TestZipfMatchesDistribution compares drawn rank frequencies with the exact
// probabilities 1/k^theta / sum, for exponents below, at and above 1.
func TestZipfMatchesDistribution(t *testing.T) {
	const n, draws = 20, 200000
	for _, theta := range []float64{0.3, 0.99, 1, 1.2, 2.5} {
		z := newZipf(n, theta)
		r := newRNG(7, 1, 2)
		counts := make([]float64, n)
		for i := 0; i < draws; i++ {
			k := z.rank(&r)
			if k >= n {
				t.Fatalf("theta %v: rank %d out of range", theta, k)
			}
			counts[k]++
		}
		var norm float64
		for k := 1; k <= n; k++ {
			norm += math.Pow(float64(k), -theta)
		}
		for k := 1; k <= n; k++ {
			p := math.Pow(float64(k), -theta) / norm
			want := p * draws
			sd := math.Sqrt(draws * p * (1 - p))
			if math.Abs(counts[k-1]-want) > 5*sd+1 {
				t.Errorf("theta %v rank %d: %v draws, expected %.0f ± %.0f", theta, k, counts[k-1], want, sd)
			}
		}
	}
}

// topShare returns the fraction of draws that hit the most-hit 1% of slots.
func topShare(t *testing.T, theta float64) float64 {
	t.Helper()
	const slots, draws = 10000, 200000
	o := newOffsets(offsetZipf, slots*4096, 4096, theta)
	r := newRNG(3, 0, 0)
	hits := make([]int, slots)
	for i := 0; i < draws; i++ {
		off := o.next(&r)
		if off%4096 != 0 || off/4096 >= slots {
			t.Fatalf("offset %d not aligned or out of range", off)
		}
		hits[off/4096]++
	}
	sort.Sort(sort.Reverse(sort.IntSlice(hits)))
	top := 0
	for _, h := range hits[:slots/100] {
		top += h
	}
	return float64(top) / draws
}

func TestZipfSkew(t *testing.T) {
	if s := topShare(t, 1.2); s < 0.5 {
		t.Errorf("theta 1.2: top 1%% of slots got %.1f%% of I/Os, expected most of them", 100*s)
	}
	if s := topShare(t, 0.8); s < 0.1 {
		t.Errorf("theta 0.8: top 1%% of slots got %.1f%% of I/Os, expected well above 1%%", 100*s)
	}
	// Near-uniform: the top 1% only gets what sampling noise gives it (about 1.3%).
	if s := topShare(t, 0.0001); s > 0.02 {
		t.Errorf("theta 0.0001: top 1%% of slots got %.1f%% of I/Os, expected about 1%%", 100*s)
	}
}

func TestZipfHotSlotsAreScattered(t *testing.T) {
	const slots = 1 << 20
	o := newOffsets(offsetZipf, slots*512, 512, 1.1)
	// The ten hottest ranks must not sit next to each other.
	var prev uint64
	for k := uint64(0); k < 10; k++ {
		s := o.scatter(k)
		if k > 0 {
			d := max(s, prev) - min(s, prev)
			if d < slots/100 {
				t.Errorf("ranks %d and %d land %d slots apart", k-1, k, d)
			}
		}
		prev = s
	}
}

func TestRNGStreamsDiffer(t *testing.T) {
	a, b, c := newRNG(1, 0, 0), newRNG(1, 1, 0), newRNG(1, 0, 1)
	a2 := newRNG(1, 0, 0)
	same := 0
	for i := 0; i < 100; i++ {
		x, y, z := a.next(), b.next(), c.next()
		if x == y || x == z {
			same++
		}
		if x != a2.next() {
			t.Fatal("same seed, worker and target gave different streams")
		}
	}
	if same > 0 {
		t.Errorf("%d equal draws between different jobs' streams", same)
	}
	f := newRNG(9, 0, 0)
	for i := 0; i < 1000; i++ {
		if v := f.float(); v < 0 || v >= 1 {
			t.Fatalf("float %v outside [0,1)", v)
		}
	}
}
