package workload

import (
	"math"
	"math/bits"
)

// offsetKind says how a job picks the slot of its next I/O.
type offsetKind uint8

const (
	offsetSequential offsetKind = iota
	offsetUniform
	offsetZipf
)

// offsets yields I/O offsets for one job: slots are IOSize-aligned pieces of the target
// (capacity/IOSize of them; a partial slot at the end is never touched).
type offsets struct {
	kind   offsetKind
	slots  uint64
	ioSize uint64
	pos    uint64 // next sequential slot
	zipf   zipf
	permA  uint64 // multiplier of the rank-to-slot permutation, coprime to slots
}

func newOffsets(kind offsetKind, capacity, ioSize uint64, theta float64) offsets {
	o := offsets{kind: kind, slots: capacity / ioSize, ioSize: ioSize}
	if kind == offsetZipf {
		o.zipf = newZipf(o.slots, theta)
		o.permA = permMultiplier(o.slots)
	}
	return o
}

// next returns the byte offset of the next I/O.
func (o *offsets) next(r *rng) uint64 {
	var slot uint64
	switch o.kind {
	case offsetSequential:
		slot = o.pos
		o.pos++
		if o.pos == o.slots {
			o.pos = 0
		}
	case offsetUniform:
		slot = r.below(o.slots)
	case offsetZipf:
		slot = o.scatter(o.zipf.rank(r))
	}
	return slot * o.ioSize
}

// scatter maps a zipf rank (0 = hottest) to a slot by rank*permA mod slots. Because
// permA is coprime to slots this is a bijection: every slot has exactly one rank, and
// the hot ranks land about 0.618*slots apart instead of crowding the start of the
// namespace.
func (o *offsets) scatter(rank uint64) uint64 {
	hi, lo := bits.Mul64(rank, o.permA)
	return bits.Rem64(hi, lo, o.slots)
}

// permMultiplier picks the odd-ish multiplier nearest the golden section of n that is
// coprime to n.
func permMultiplier(n uint64) uint64 {
	if n <= 2 {
		return 1
	}
	a := uint64(float64(n) * 0.6180339887498949)
	if a == 0 {
		a = 1
	}
	for gcd(a, n) != 1 {
		a++
		if a >= n {
			a = 1
		}
	}
	return a
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// zipf draws ranks 0..n-1 with P(rank k) proportional to 1/(k+1)^theta, for any
// theta > 0, by rejection-inversion (Hörmann and Derflinger, "Rejection-inversion to
// generate variates from monotone discrete distributions", 1996): it inverts the
// integral H of the density h(x) = x^-theta and rejects the rare draws that fall
// outside the histogram of the discrete distribution. Setup is O(1) (no table over the
// namespace), a draw is a few logs and exps, and the expected number of rounds is
// barely above one.
type zipf struct {
	n        float64
	theta    float64
	hX1      float64 // H(1.5) - 1
	hN       float64 // H(n + 0.5)
	accept   float64 // draws with k - x below this are accepted without the exact test
	single   bool    // n == 1: every draw is rank 0
	maxIndex uint64
}

func newZipf(n uint64, theta float64) zipf {
	z := zipf{n: float64(n), theta: theta, single: n <= 1, maxIndex: n}
	if z.single {
		return z
	}
	z.hX1 = z.bigH(1.5) - 1
	z.hN = z.bigH(z.n + 0.5)
	z.accept = 2 - z.bigHInv(z.bigH(2.5)-z.h(2))
	return z
}

// rank returns a rank in [0, n): 0 is the most frequent.
func (z *zipf) rank(r *rng) uint64 {
	if z.single {
		return 0
	}
	for {
		u := z.hN + r.float()*(z.hX1-z.hN)
		x := z.bigHInv(u)
		k := math.Floor(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > z.n {
			k = z.n
		}
		if k-x <= z.accept || u >= z.bigH(k+0.5)-z.h(k) {
			idx := uint64(k) - 1
			if idx >= z.maxIndex { // float rounding at huge n
				idx = z.maxIndex - 1
			}
			return idx
		}
	}
}

// h is the (unnormalised) density x^-theta.
func (z *zipf) h(x float64) float64 { return math.Exp(-z.theta * math.Log(x)) }

// bigH is the integral of h from 1 to x, (x^(1-theta) - 1) / (1-theta), written so
// that it stays exact near theta = 1 (where it becomes log x).
func (z *zipf) bigH(x float64) float64 {
	lx := math.Log(x)
	return expm1Over((1-z.theta)*lx) * lx
}

// bigHInv inverts bigH.
func (z *zipf) bigHInv(x float64) float64 {
	t := x * (1 - z.theta)
	if t < -1 { // rounding can push it past the pole
		t = -1
	}
	return math.Exp(log1pOver(t) * x)
}

// log1pOver is log(1+x)/x, continued to 1 at x = 0.
func log1pOver(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}

// expm1Over is (e^x - 1)/x, continued to 1 at x = 0.
func expm1Over(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x*0.5*(1+x/3*(1+0.25*x))
}
