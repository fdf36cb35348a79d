package sim

import "math/bits"

// nandModel times commands like a flash SSD. It is owned by the device thread.
//
// Flash pages are striped over channels first, then dies (page p is on channel
// p % channels, die (p / channels) % dies), and each die does one thing at a time: a
// page read keeps it busy for ReadLatency, programming a page for ProgramLatency. A
// command completes when the last of its pages is done, so random reads saturate near
// dies/ReadLatency and their latency grows with queue depth once dies are busy.
//
// Writes land in a write cache and complete after WriteLatency; the cache drains at the
// rate all dies together can program (a leaky bucket), and once it is full a write waits
// for room, which throttles a sustained write stream to the program bandwidth. The
// programs also occupy the dies, so reads slow down behind heavy writing.
type nandModel struct {
	readNs, writeNs, progNs int64
	pageShift               uint
	channels, diesPerCh     uint64
	busyUntil               []int64 // per die, nanoseconds on the controller clock

	cacheBytes int64
	cached     int64   // bytes in the cache at cachedAt
	cachedAt   int64   // time of the last cache update
	drainPerNs float64 // bytes the dies program per nanosecond
}

func newNANDModel(n NANDConfig) *nandModel {
	dies := n.Channels * n.DiesPerChannel
	m := &nandModel{
		readNs:     int64(n.ReadLatency),
		writeNs:    int64(n.WriteLatency),
		progNs:     int64(n.ProgramLatency),
		pageShift:  uint(bits.TrailingZeros32(n.PageSize)),
		channels:   uint64(n.Channels),
		diesPerCh:  uint64(n.DiesPerChannel),
		busyUntil:  make([]int64, dies),
		cacheBytes: int64(n.WriteCache),
	}
	m.drainPerNs = float64(dies) * float64(n.PageSize) / float64(n.ProgramLatency)
	return m
}

func (m *nandModel) die(page uint64) int {
	ch := page % m.channels
	d := (page / m.channels) % m.diesPerCh
	return int(ch*m.diesPerCh + d)
}

// occupy books each flash page of bytes [off, off+n) on its die for perPage nanoseconds
// scaled by the share of the page touched, and returns when the last one is done.
func (m *nandModel) occupy(now int64, off, n uint64, perPage int64, scale bool) int64 {
	done := now
	pageSize := uint64(1) << m.pageShift
	for p := off >> m.pageShift; p <= (off+n-1)>>m.pageShift; p++ {
		cost := perPage
		if scale {
			lo := max(off, p<<m.pageShift)
			hi := min(off+n, (p+1)<<m.pageShift)
			cost = perPage * int64(hi-lo) / int64(pageSize)
		}
		d := m.die(p)
		end := max(now, m.busyUntil[d]) + cost
		m.busyUntil[d] = end
		done = max(done, end)
	}
	return done
}

// read returns when a read of bytes [off, off+n) issued at now completes.
func (m *nandModel) read(now int64, off, n uint64) int64 {
	return m.occupy(now, off, n, m.readNs, false)
}

// drain brings the cache level up to now.
func (m *nandModel) drain(now int64) {
	if now > m.cachedAt {
		m.cached = max(0, m.cached-int64(float64(now-m.cachedAt)*m.drainPerNs))
		m.cachedAt = now
	}
}

// write returns when a write of bytes [off, off+n) issued at now completes.
func (m *nandModel) write(now int64, off, n uint64) int64 {
	m.drain(now)
	m.cached += int64(n)
	done := now + m.writeNs
	if over := m.cached - m.cacheBytes; over > 0 {
		done += int64(float64(over) / m.drainPerNs)
	}
	m.occupy(now, off, n, m.progNs, true)
	return done
}

// flush returns when everything cached at now has been programmed.
func (m *nandModel) flush(now int64) int64 {
	m.drain(now)
	return now + m.writeNs + int64(float64(m.cached)/m.drainPerNs)
}

// trim is the time of a deallocate or write-zeroes: a mapping-table update.
func (m *nandModel) trim(now int64) int64 { return now + m.writeNs }
