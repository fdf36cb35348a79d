package workload

import "math/bits"

// rng is xoshiro256**: fast, small, and owned by one (worker, target) job, so drawing a
// number takes no lock and no allocation.
type rng struct{ s [4]uint64 }

// splitmix64 advances *x and returns the next output; it spreads related seeds (seed,
// worker, target) into unrelated xoshiro states.
func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newRNG derives a generator for one job from the run seed and its worker and target
// indexes.
func newRNG(seed uint64, worker, tgt int) rng {
	x := seed ^ uint64(worker)*0xd1342543de82ef95 ^ uint64(tgt)*0xa0761d6478bd642f
	var r rng
	for i := range r.s {
		r.s[i] = splitmix64(&x)
	}
	return r
}

func (r *rng) next() uint64 {
	s := &r.s
	result := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return result
}

// below returns a number in [0, n) by multiply-shift (Lemire); its bias, below n/2^64,
// is far under anything a run can observe.
func (r *rng) below(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// float returns a number in [0, 1) with 53 random bits.
func (r *rng) float() float64 {
	return float64(r.next()>>11) * (1.0 / (1 << 53))
}
