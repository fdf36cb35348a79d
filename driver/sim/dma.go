package sim

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
)

// Simulated bus addresses. They are deliberately not host virtual addresses, so a
// driver that hands the device a pointer instead of Buffer.Addr fails loudly (Data
// Transfer Error), and regions are kept apart by an unmapped gap so that running off the
// end of a buffer is caught too. Freed ranges are never reused.
const (
	dmaBase = 0x1_0000_0000
	dmaGap  = 1 << 20
)

// region is one allocation: device address range [addr, addr+len(mem)).
type region struct {
	addr uint64
	mem  []byte
	// queues counts device queues living in this region; such memory cannot be freed.
	queues *atomic.Int32
}

// dmaSpace is the simulated host memory the device can reach: the Allocator the host
// uses and the address table the device translates through.
//
// The table is an immutable sorted slice behind an atomic pointer: the device thread
// loads it without locks, and the rare Alloc/Free build a new copy under mu.
type dmaSpace struct {
	mu      sync.Mutex
	table   atomic.Pointer[[]region]
	next    uint64
	closed  bool
	quiesce func() // waits until the device thread holds no translation; nil when stopped
	// queueFree, when set, decides a Free of memory that holds a device queue (it
	// records the violation); without it such a Free is refused.
	queueFree func(addr uint64, pin *atomic.Int32) bool
	// bars maps the controller's other BARs (Controller.MapBAR), so that a host handed
	// only the Allocator finds the controller memory buffer.
	bars func(index int) (bus.Buffer, error)
}

// MapBAR implements bus.BARMapper for the controller this memory belongs to.
func (d *dmaSpace) MapBAR(index int) (bus.Buffer, error) {
	if d.bars == nil {
		return bus.Buffer{}, fmt.Errorf("sim: BAR %d is not implemented", index)
	}
	return d.bars(index)
}

func newDMASpace() *dmaSpace {
	d := &dmaSpace{next: dmaBase}
	empty := []region{}
	d.table.Store(&empty)
	return d
}

// Alloc implements bus.Allocator: page-aligned, zeroed memory off the Go heap.
func (d *dmaSpace) Alloc(size int) (bus.Buffer, error) {
	if size <= 0 {
		return bus.Buffer{}, fmt.Errorf("sim: alloc of %d bytes: size must be positive", size)
	}
	n := (size + bus.PageSize - 1) &^ (bus.PageSize - 1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return bus.Buffer{}, fmt.Errorf("sim: alloc of %d bytes: controller is closed", size)
	}
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return bus.Buffer{}, fmt.Errorf("sim: alloc of %d bytes: mmap: %w", size, err)
	}
	r := region{addr: d.next, mem: mem, queues: new(atomic.Int32)}
	d.next += uint64(n) + dmaGap
	old := *d.table.Load()
	t := make([]region, 0, len(old)+1)
	t = append(t, old...)
	t = append(t, r) // addresses only grow, so the table stays sorted
	d.table.Store(&t)
	return bus.Buffer{Bytes: mem[:size:size], Addr: r.addr}, nil
}

// Free implements bus.Allocator. Memory holding a live device queue cannot be freed:
// delete the queue (or reset the controller) first.
func (d *dmaSpace) Free(b bus.Buffer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := *d.table.Load()
	i := sort.Search(len(old), func(i int) bool { return old[i].addr >= b.Addr })
	if i == len(old) || old[i].addr != b.Addr || len(b.Bytes) == 0 || unsafe.SliceData(b.Bytes) != unsafe.SliceData(old[i].mem) {
		return fmt.Errorf("sim: free of buffer at device address %#x: not allocated by this controller", b.Addr)
	}
	r := old[i]
	if r.queues.Load() > 0 && (d.queueFree == nil || !d.queueFree(r.addr, r.queues)) {
		return fmt.Errorf("sim: free of buffer at device address %#x: a device queue still lives in it (delete the queue or reset the controller first)", b.Addr)
	}
	t := make([]region, 0, len(old)-1)
	t = append(t, old[:i]...)
	t = append(t, old[i+1:]...)
	d.table.Store(&t)
	// The device thread may have translated an address in this region just before the
	// table changed; wait until it has moved on before unmapping.
	if d.quiesce != nil {
		d.quiesce()
	}
	if err := unix.Munmap(r.mem); err != nil {
		return fmt.Errorf("sim: free of buffer at device address %#x: munmap: %w", b.Addr, err)
	}
	return nil
}

// closeAll unmaps every region; the device thread must be stopped.
func (d *dmaSpace) closeAll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var first error
	for _, r := range *d.table.Load() {
		if err := unix.Munmap(r.mem); err != nil && first == nil {
			first = fmt.Errorf("sim: close: munmap of DMA region at %#x: %w", r.addr, err)
		}
	}
	empty := []region{}
	d.table.Store(&empty)
	return first
}

// lookup finds the region holding [addr, addr+n). It runs on the device thread for every
// address it uses and takes no lock.
func (d *dmaSpace) lookup(addr uint64, n uint64) (region, bool) {
	t := *d.table.Load()
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t[m].addr <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return region{}, false
	}
	r := t[lo-1]
	off := addr - r.addr
	if off >= uint64(len(r.mem)) || n > uint64(len(r.mem))-off {
		return region{}, false
	}
	return r, true
}

// translate returns the n bytes of host memory at device address addr, or nil when any
// of them is outside every region.
func (d *dmaSpace) translate(addr uint64, n uint64) []byte {
	r, ok := d.lookup(addr, n)
	if !ok {
		return nil
	}
	off := addr - r.addr
	return r.mem[off : off+n : off+n]
}

// regionCache remembers the region of the last translation, valid while the table it
// came from is current (any Alloc or Free installs a new table). Queues cycle through
// the same buffers, so most PRP entries hit it and skip the binary search, whose
// probes into a table of hundreds of regions miss the cache.
type regionCache struct {
	table *[]region
	r     region
}

// translateCached is translate through cache, which belongs to the calling thread.
func (d *dmaSpace) translateCached(cache *regionCache, addr uint64, n uint64) []byte {
	t := d.table.Load()
	if cache.table == t {
		if off := addr - cache.r.addr; addr >= cache.r.addr && off < uint64(len(cache.r.mem)) && n <= uint64(len(cache.r.mem))-off {
			return cache.r.mem[off : off+n : off+n]
		}
	}
	r, ok := d.lookup(addr, n)
	if !ok {
		return nil
	}
	cache.table, cache.r = t, r
	off := addr - r.addr
	return r.mem[off : off+n : off+n]
}

// waitEpoch returns a quiesce function for a device loop that bumps epoch once per
// iteration and sets stopped when it exits.
func waitEpoch(epoch *atomic.Uint64, stopped *atomic.Bool) func() {
	return func() {
		start := epoch.Load()
		for epoch.Load() < start+2 && !stopped.Load() {
			time.Sleep(50 * time.Microsecond)
		}
	}
}
