package pcie

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/bus"
)

// fakeSysfs builds a sysfs tree in a temp dir and points the package at it.
type fakeSysfs struct {
	t    *testing.T
	root string
}

func newFakeSysfs(t *testing.T) *fakeSysfs {
	t.Helper()
	root := t.TempDir()
	oldSys, oldDev, oldProc := sysfsRoot, devRoot, procRoot
	sysfsRoot = filepath.Join(root, "sys")
	devRoot = filepath.Join(root, "dev")
	procRoot = filepath.Join(root, "proc")
	t.Cleanup(func() { sysfsRoot, devRoot, procRoot = oldSys, oldDev, oldProc })
	for _, d := range []string{"sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/kernel/iommu_groups", "dev", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeSysfs{t: t, root: root}
}

func (f *fakeSysfs) write(path, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSysfs) link(path, target string) {
	f.t.Helper()
	p := filepath.Join(f.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		f.t.Fatal(err)
	}
}

// device adds a PCI function; driver "" leaves it unbound, group < 0 gives it no group.
func (f *fakeSysfs) device(addr, class, vendor, device, driver string, group int, numa string) string {
	dir := "sys/bus/pci/devices/" + addr
	f.write(dir+"/class", class+"\n")
	f.write(dir+"/vendor", vendor+"\n")
	f.write(dir+"/device", device+"\n")
	f.write(dir+"/numa_node", numa+"\n")
	if driver != "" {
		f.link(dir+"/driver", "../../../bus/pci/drivers/"+driver)
	}
	if group >= 0 {
		g := itoa(group)
		f.link(dir+"/iommu_group", "../../../kernel/iommu_groups/"+g)
		f.link("sys/kernel/iommu_groups/"+g+"/devices/"+addr, "../../../../bus/pci/devices/"+addr)
	}
	return dir
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

func (f *fakeSysfs) standard() {
	// A kernel-bound controller with native multipath (hidden path node + head).
	dir := f.device("0000:00:04.0", "0x010802", "0x1b36", "0x0010", "nvme", 3, "-1")
	f.write(dir+"/nvme/nvme0/model", "QEMU NVMe Ctrl                          \n")
	f.write(dir+"/nvme/nvme0/serial", "lab-kernel          \n")
	f.write(dir+"/nvme/nvme0/firmware_rev", "7.2     \n")
	f.write(dir+"/nvme/nvme0/nvme0c0n1/size", "0\n")
	f.write(dir+"/nvme/nvme0/nvme0c0n2/size", "0\n")
	f.write(dir+"/nvme/nvme0/nvme0c0n10/size", "0\n")
	f.write(dir+"/nvme/nvme0/cntlid", "0\n")
	// A kernel-bound controller without multipath.
	dir = f.device("0000:00:06.0", "0x010802", "0x144d", "0xa808", "nvme", 5, "1")
	f.write(dir+"/nvme/nvme1/model", "Samsung SSD 970\n")
	f.write(dir+"/nvme/nvme1/nvme1n1/size", "0\n")
	// Userspace-bound and unbound controllers.
	f.device("0000:00:05.0", "0x010802", "0x1b36", "0x0010", "vfio-pci", 4, "0")
	f.device("0001:81:00.0", "0x010802", "0x8086", "0x0953", "uio_pci_generic", -1, "1")
	f.device("0000:00:07.0", "0x010802", "0x1b36", "0x0010", "", 6, "0")
	// Not NVMe: an AHCI controller and a NIC.
	f.device("0000:00:1f.2", "0x010601", "0x8086", "0x2922", "ahci", 7, "0")
	f.device("0000:00:02.0", "0x020000", "0x8086", "0x10d3", "e1000e", 4, "0")
}

func TestProbe(t *testing.T) {
	f := newFakeSysfs(t)
	f.standard()
	ctrls, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, c := range ctrls {
		addrs = append(addrs, c.Address)
	}
	if got, want := strings.Join(addrs, " "), "0000:00:04.0 0000:00:05.0 0000:00:06.0 0000:00:07.0 0001:81:00.0"; got != want {
		t.Fatalf("Probe addresses = %q, want %q", got, want)
	}
	k := ctrls[0]
	if k.VendorID != 0x1b36 || k.DeviceID != 0x0010 || k.Driver != "nvme" || k.IOMMUGroup != 3 || k.NUMANode != -1 {
		t.Errorf("kernel controller = %+v", k)
	}
	if got := strings.Join(k.BlockDevices, ","); got != "nvme0n1,nvme0n2,nvme0n10" {
		t.Errorf("multipath block devices = %q, want nvme0n1,nvme0n2,nvme0n10", got)
	}
	if k.Model != "QEMU NVMe Ctrl" || k.Serial != "lab-kernel" || k.Firmware != "7.2" {
		t.Errorf("identify strings = %q %q %q", k.Model, k.Serial, k.Firmware)
	}
	if k.Userspace() {
		t.Error("kernel-bound controller reported as userspace")
	}
	if got := strings.Join(ctrls[2].BlockDevices, ","); got != "nvme1n1" || ctrls[2].NUMANode != 1 {
		t.Errorf("plain controller: block devices %q numa %d", got, ctrls[2].NUMANode)
	}
	v := ctrls[1]
	if v.Driver != DriverVFIO || !v.Userspace() || v.BlockDevices != nil || v.Model != "" || v.NUMANode != 0 {
		t.Errorf("vfio controller = %+v", v)
	}
	if ctrls[3].Driver != "" || ctrls[3].Userspace() {
		t.Errorf("unbound controller = %+v", ctrls[3])
	}
	u := ctrls[4]
	if u.Driver != DriverUIO || !u.Userspace() || u.IOMMUGroup != -1 || u.VendorID != 0x8086 {
		t.Errorf("uio controller = %+v", u)
	}
}

func TestProbeBadSysfs(t *testing.T) {
	f := newFakeSysfs(t)
	f.device("0000:00:04.0", "0x010802", "zz", "0x0010", "nvme", 3, "0")
	if _, err := Probe(); err == nil || !strings.Contains(err.Error(), "vendor") {
		t.Fatalf("Probe with a bad vendor file: err = %v, want one naming the vendor file", err)
	}
	sysfsRoot = filepath.Join(f.root, "nothing")
	if _, err := Probe(); err == nil || !strings.HasPrefix(err.Error(), "pcie: ") {
		t.Fatalf("Probe without sysfs: err = %v", err)
	}
}

func TestCanonicalAddress(t *testing.T) {
	good := map[string]string{
		"0000:04:00.0":  "0000:04:00.0",
		"04:00.0":       "0000:04:00.0",
		"0000:AF:1f.7":  "0000:af:1f.7",
		" 0001:81:00.1": "0001:81:00.1",
		"10000:00:02.0": "10000:00:02.0",
	}
	for in, want := range good {
		got, err := CanonicalAddress(in)
		if err != nil || got != want {
			t.Errorf("CanonicalAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0000:04:00", "0000:04:00.8", "0000:04:20.0", "g000:04:00.0", "/dev/nvme0n1", "0000:04:00.0.0"} {
		_, err := CanonicalAddress(bad)
		if err == nil || !strings.Contains(err.Error(), "domain:]bus:device.function") && !strings.Contains(err.Error(), "device number") {
			t.Errorf("CanonicalAddress(%q) err = %v, want a format error", bad, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	f := newFakeSysfs(t)
	f.standard()
	cases := []struct{ addr, want string }{
		{"00:04.0", "bound to the kernel nvme driver"},
		{"00:04.0", "/dev/nvme0n1"},
		{"00:04.0", "scripts/setup.sh"},
		{"00:07.0", "not bound to any driver"},
		{"0000:00:1f.2", `bound to driver "ahci"`},
		{"0000:09:00.0", "no PCI device at 0000:09:00.0"},
		{"0000:09:00.0", "0000:00:05.0 (vfio-pci)"},
		{"0000:09:00.0", "0000:00:07.0 (no driver)"},
		{"bogus", "not of the form"},
		// vfio-pci without /dev/vfio/vfio in the fake tree.
		{"0000:00:05.0", "opening the VFIO container"},
		// uio without resource0.
		{"0001:81:00.0", "opening BAR0 (resource0)"},
	}
	for _, c := range cases {
		d, err := Open(c.addr)
		if err == nil {
			d.Close()
			t.Errorf("Open(%q) succeeded on a fake tree", c.addr)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "pcie: ") {
			t.Errorf("Open(%q) err = %q, want it to contain %q", c.addr, err, c.want)
		}
	}
}

func TestOpenVFIOWithoutGroup(t *testing.T) {
	f := newFakeSysfs(t)
	f.device("0000:00:05.0", "0x010802", "0x1b36", "0x0010", "vfio-pci", -1, "0")
	_, err := Open("0000:00:05.0")
	if err == nil || !strings.Contains(err.Error(), "no IOMMU group") {
		t.Fatalf("err = %v, want no IOMMU group", err)
	}
}

func TestGroupBlockers(t *testing.T) {
	f := newFakeSysfs(t)
	f.standard()
	// Group 4 holds the vfio-bound controller and an e1000e NIC.
	got := groupBlockers(4)
	if len(got) != 1 || got[0] != "0000:00:02.0 (bound to e1000e)" {
		t.Fatalf("groupBlockers(4) = %q", got)
	}
	if got := groupBlockers(6); len(got) != 0 {
		t.Fatalf("groupBlockers(6) = %q, want none", got)
	}
}

func TestPhysAddr(t *testing.T) {
	dir := t.TempDir()
	page := uint64(os.Getpagesize())
	entries := make([]byte, 8*4)
	binary.LittleEndian.PutUint64(entries[8*1:], pagemapPresent|0x12345)
	binary.LittleEndian.PutUint64(entries[8*2:], pagemapPresent) // PFN hidden: not root
	binary.LittleEndian.PutUint64(entries[8*3:], 0x777)          // not present
	path := filepath.Join(dir, "pagemap")
	if err := os.WriteFile(path, entries, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := physAddr(path, uintptr(page+0x10))
	if err != nil || got != 0x12345*page+0x10 {
		t.Fatalf("physAddr = %#x, %v; want %#x", got, err, 0x12345*page+0x10)
	}
	if _, err := physAddr(path, uintptr(2*page)); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("hidden PFN: err = %v, want a root hint", err)
	}
	if _, err := physAddr(path, uintptr(3*page)); err == nil || !strings.Contains(err.Error(), "not present") {
		t.Errorf("absent page: err = %v", err)
	}
}

func TestABISizes(t *testing.T) {
	// The compile-time checks pin sizes; this pins the field offsets the kernel reads.
	if unsafe.Offsetof(vfioRegionInfo{}.Size) != 16 || unsafe.Offsetof(vfioRegionInfo{}.Offset) != 24 {
		t.Error("vfio_region_info layout")
	}
	if unsafe.Offsetof(vfioIOMMUType1DMAMap{}.Vaddr) != 8 || unsafe.Offsetof(vfioIOMMUType1DMAMap{}.IOVA) != 16 || unsafe.Offsetof(vfioIOMMUType1DMAMap{}.Size) != 24 {
		t.Error("vfio_iommu_type1_dma_map layout")
	}
	if unsafe.Offsetof(vfioIOMMUType1DMAUnmap{}.IOVA) != 8 || unsafe.Offsetof(vfioDeviceInfo{}.NumIRQs) != 12 {
		t.Error("unmap / device_info layout")
	}
	// _IO(';', 100+n) values from the kernel headers.
	if vfioGetAPIVersion != 0x3b64 || vfioGroupGetDeviceFD != 0x3b6a || vfioDeviceGetRegionInfo != 0x3b6c || vfioIOMMUMapDMA != 0x3b71 || vfioIOMMUUnmapDMA != 0x3b72 {
		t.Error("ioctl numbers")
	}
}

// fakeMapper gives each mapping a distinct fake device address.
type fakeMapper struct {
	iova    *iovaSpace
	mapped  map[uint64]int
	contig  bool
	unmaps  int
	failMap bool
	onUnmap func()
}

func (m *fakeMapper) contiguous() bool { return m.contig }
func (m *fakeMapper) mapDMA(mem []byte) (uint64, error) {
	if m.failMap {
		return 0, os.ErrPermission
	}
	a, err := m.iova.get(uint64(len(mem)))
	if err == nil {
		m.mapped[a] = len(mem)
	}
	return a, err
}
func (m *fakeMapper) unmapDMA(mem []byte, addr uint64) error {
	if m.mapped[addr] != len(mem) {
		return os.ErrInvalid
	}
	if m.onUnmap != nil {
		m.onUnmap()
	}
	delete(m.mapped, addr)
	m.iova.put(addr, uint64(len(mem)))
	m.unmaps++
	return nil
}

// testArena uses ordinary pages: only tests may, the product always asks for hugepages.
func testArena(contig bool) (*arena, *fakeMapper) {
	iova, err := newIOVASpace(legacyIOVAWindow)
	if err != nil {
		panic(err)
	}
	m := &fakeMapper{iova: iova, mapped: map[uint64]int{}, contig: contig}
	a := newArena(m)
	a.hugepages = false
	a.sizes = []int{HugePageSize}
	return a, m
}

func TestArenaCarving(t *testing.T) {
	a, m := testArena(true)
	var bufs []bus.Buffer
	// 600 small allocations (PRP lists, rings) must share hugepages: 2 chunks, not 600.
	for i := 0; i < 600; i++ {
		b, err := a.Alloc(100 + i)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Bytes) != 100+i || b.Addr%bus.PageSize != 0 || uintptr(unsafe.Pointer(&b.Bytes[0]))%bus.PageSize != 0 {
			t.Fatalf("alloc %d: len %d addr %#x not page aligned", i, len(b.Bytes), b.Addr)
		}
		b.Bytes[0] = 0xAA
		bufs = append(bufs, b)
	}
	if pages, chunks := a.inUse(); pages != 600 || chunks != 2 {
		t.Fatalf("600 one-page allocations: %d pages in %d chunks, want 600 in 2", pages, chunks)
	}
	// Device addresses are distinct and track host offsets.
	seen := map[uint64]bool{}
	for _, b := range bufs {
		if seen[b.Addr] {
			t.Fatalf("device address %#x handed out twice", b.Addr)
		}
		seen[b.Addr] = true
	}
	if err := a.Free(bufs[10]); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(bufs[10]); err == nil || !strings.Contains(err.Error(), "double free") {
		t.Fatalf("double free: err = %v", err)
	}
	// The freed page is reused and comes back zeroed.
	b, err := a.Alloc(bus.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr != bufs[10].Addr || b.Bytes[0] != 0 {
		t.Fatalf("reuse: addr %#x (want %#x) first byte %#x (want 0)", b.Addr, bufs[10].Addr, b.Bytes[0])
	}
	// A multi-page allocation is contiguous in device space.
	big, err := a.Alloc(128 << 10)
	if err != nil || len(big.Bytes) != 128<<10 {
		t.Fatalf("128 KiB: %v", err)
	}
	// Larger than a hugepage: a dedicated mapping, released on Free.
	huge, err := a.Alloc(3 << 20)
	if err != nil || len(huge.Bytes) != 3<<20 || huge.Addr%HugePageSize != 0 {
		t.Fatalf("3 MiB: len %d addr %#x err %v", len(huge.Bytes), huge.Addr, err)
	}
	if err := a.Free(huge); err != nil || m.unmaps != 1 {
		t.Fatalf("free dedicated: %v, unmaps %d", err, m.unmaps)
	}
	if err := a.Free(bus.Buffer{Bytes: make([]byte, 4096), Addr: 5}); err == nil || !strings.Contains(err.Error(), "did not allocate") {
		t.Fatalf("foreign free: err = %v", err)
	}
	if err := a.Free(bus.Buffer{Bytes: bufs[20].Bytes, Addr: bufs[20].Addr + 1}); err == nil {
		t.Fatal("free with a wrong device address succeeded")
	}
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	if len(m.mapped) != 0 {
		t.Fatalf("close left %d mappings", len(m.mapped))
	}
	if _, err := a.Alloc(1); err == nil {
		t.Fatal("Alloc after close succeeded")
	}
}

func TestArenaErrors(t *testing.T) {
	a, m := testArena(false)
	for _, n := range []int{0, -1} {
		if _, err := a.Alloc(n); err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("Alloc(%d) err = %v", n, err)
		}
	}
	// Without an IOMMU nothing bigger than a hugepage is contiguous.
	if _, err := a.Alloc(HugePageSize + 1); err == nil || !strings.Contains(err.Error(), "physically contiguous") {
		t.Errorf("UIO big alloc err = %v", err)
	}
	if b, err := a.Alloc(HugePageSize); err != nil || len(b.Bytes) != HugePageSize {
		t.Errorf("a whole hugepage: %v", err)
	}
	m.failMap = true
	if _, err := a.Alloc(HugePageSize); err == nil {
		t.Error("Alloc succeeded when mapping failed")
	}
	_ = a.close()
}

func TestHugepageError(t *testing.T) {
	pools := []hugepagePool{{size: 2 << 20, total: 4, free: 1}, {size: 1 << 30, total: 0, free: 0}}
	err := hugepageError(5<<20, pools, unix.ENOMEM)
	for _, want := range []string{"5242880 bytes", "3 more free 2 MiB hugepage(s)", "2 MiB: 1 of 4 free", "1 GiB: 0 of 0 free", "HUGEMEM=2048 scripts/setup.sh", "nr_hugepages"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("hugepage error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, unix.ENOMEM) {
		t.Errorf("hugepage error does not wrap ENOMEM: %v", err)
	}
	if err := hugepageError(1, nil, unix.EPERM); !strings.Contains(err.Error(), "lists no hugepage sizes") || !strings.Contains(err.Error(), "RLIMIT_MEMLOCK") {
		t.Errorf("no pools, EPERM: %v", err)
	}
}

func TestHugepageSizes(t *testing.T) {
	f := newFakeSysfs(t)
	dir := "sys/kernel/mm/hugepages/"
	f.write(dir+"hugepages-2048kB/nr_hugepages", "0\n")
	f.write(dir+"hugepages-2048kB/free_hugepages", "0\n")
	f.write(dir+"hugepages-1048576kB/nr_hugepages", "2\n")
	f.write(dir+"hugepages-1048576kB/free_hugepages", "2\n")
	f.write(dir+"hugepages-bogus/nr_hugepages", "1\n")
	pools := hugepagePools()
	if len(pools) != 2 || pools[0] != (hugepagePool{size: 2 << 20}) || pools[1] != (hugepagePool{size: 1 << 30, total: 2, free: 2}) {
		t.Fatalf("pools = %+v", pools)
	}
	// A 1 GiB-only host is served from 1 GiB pages.
	if got := hugepageSizes(pools); len(got) != 1 || got[0] != 1<<30 {
		t.Errorf("1 GiB host: sizes %v, want [1 GiB]", got)
	}
	// Both free: the smaller first; reserved but exhausted sizes last.
	both := []hugepagePool{{size: 2 << 20, total: 8, free: 8}, {size: 1 << 30, total: 1, free: 1}}
	if got := hugepageSizes(both); len(got) != 2 || got[0] != 2<<20 || got[1] != 1<<30 {
		t.Errorf("both: %v", got)
	}
	exhausted := []hugepagePool{{size: 2 << 20, total: 8, free: 0}, {size: 1 << 30, total: 1, free: 1}}
	if got := hugepageSizes(exhausted); len(got) != 2 || got[0] != 1<<30 || got[1] != 2<<20 {
		t.Errorf("2 MiB exhausted: %v", got)
	}
	if got := hugepageSizes(nil); len(got) != 1 || got[0] != HugePageSize {
		t.Errorf("no pools: %v, want [2 MiB] so the error explains", got)
	}
	// mmap and memfd_create name the size explicitly: log2 in the bits above
	// MAP_HUGE_SHIFT, as the kernel's MAP_HUGE_2MB / MAP_HUGE_1GB.
	if hugeFlag(2<<20) != unix.MAP_HUGE_2MB || hugeFlag(1<<30) != unix.MAP_HUGE_1GB || hugeFlag(1<<30) != unix.MFD_HUGE_1GB {
		t.Errorf("hugeFlag: %#x %#x", hugeFlag(2<<20), hugeFlag(1<<30))
	}
}

// TestArenaLargePages carves from the larger of two page sizes when an allocation does
// not fit the smaller, as on a host with 1 GiB pages (scaled down: ordinary pages stand
// in for hugepages here).
func TestArenaLargePages(t *testing.T) {
	a, _ := testArena(true)
	a.sizes = []int{64 << 10, 1 << 20}
	small, err := a.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	mid, err := a.Alloc(256 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.chunks) != 2 || len(a.chunks[0].mem) != 64<<10 || len(a.chunks[1].mem) != 1<<20 || a.chunks[1].dedicated {
		t.Fatalf("chunks after 4 KiB and 256 KiB: %d", len(a.chunks))
	}
	if mid.Addr%(1<<20) != 0 || small.Addr%(64<<10) != 0 {
		t.Errorf("IOVAs %#x %#x not aligned to their page sizes", small.Addr, mid.Addr)
	}
	// More than the largest page: a dedicated mapping of whole pages of the first size.
	big, err := a.Alloc(3<<20 + 1)
	if err != nil || len(big.Bytes) != 3<<20+1 {
		t.Fatalf("3 MiB+1: %v", err)
	}
	if c := a.chunks[len(a.chunks)-1]; !c.dedicated || len(c.mem) != (3<<20+1+(64<<10)-1)/(64<<10)*(64<<10) {
		t.Errorf("dedicated chunk of %d bytes", len(c.mem))
	}
	_ = a.close()
}

// tagPhys is a physMapper over ordinary memfd pages: a page's "physical address" is
// taken from a script the first time it is seen and stored in the page itself, so it
// follows the page wherever it is mapped, as a real physical address does.
type tagPhys struct {
	*fakeMapper
	script []uint64
	next   int
}

const physTag = 0x5048595354414721

// Without an IOMMU the device address is the physical one.
func (p *tagPhys) mapDMA(mem []byte) (uint64, error) { return p.physAddr(mem) }
func (p *tagPhys) unmapDMA([]byte, uint64) error     { return nil }

func (p *tagPhys) physAddr(page []byte) (uint64, error) {
	if binary.LittleEndian.Uint64(page) != physTag {
		if p.next >= len(p.script) {
			return 0, errors.New("script exhausted")
		}
		binary.LittleEndian.PutUint64(page, physTag)
		binary.LittleEndian.PutUint64(page[8:], p.script[p.next])
		p.next++
	}
	return binary.LittleEndian.Uint64(page[8:]), nil
}

func TestPhysicalRun(t *testing.T) {
	const hp = 0x10000
	pages := []filePage{{0, 10 * hp}, {hp, 30 * hp}, {2 * hp, 12 * hp}, {3 * hp, 11 * hp}, {4 * hp, 31 * hp}}
	run := physicalRun(pages, 3, hp)
	if len(run) != 3 || run[0].phys != 10*hp || run[1].off != 3*hp || run[2].off != 2*hp {
		t.Fatalf("run = %+v, want file pages 0, 3, 2 (physical 10, 11, 12)", run)
	}
	if run := physicalRun(pages, 4, hp); run != nil {
		t.Fatalf("4 adjacent pages found in %+v: %+v", pages, run)
	}
	if run := physicalRun(pages[:1], 1, hp); len(run) != 1 {
		t.Fatalf("a single page is a run of one: %+v", run)
	}
}

// TestArenaPhysicallyContiguous: without an IOMMU, an allocation larger than a hugepage
// is built from hugepages adjacent in physical memory, mapped in physical order.
func TestArenaPhysicallyContiguous(t *testing.T) {
	const hp = 64 << 10
	a, m := testArena(false)
	a.sizes = []int{hp}
	// Pages come out of the pool out of order; 10, 11, 12 form a run once the fourth
	// page is seen.
	p := &tagPhys{fakeMapper: m, script: []uint64{10 * hp, 30 * hp, 12 * hp, 11 * hp, 50 * hp}}
	a.m = p
	b, err := a.Alloc(3*hp - 100)
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr != 10*hp || len(b.Bytes) != 3*hp-100 {
		t.Fatalf("buffer at %#x, %d bytes; want %#x, %d", b.Addr, len(b.Bytes), 10*hp, 3*hp-100)
	}
	for i := 0; i < 3; i++ {
		got, _ := p.physAddr(b.Bytes[i*hp:])
		if got != uint64(10+i)*hp {
			t.Errorf("page %d of the buffer is physical %#x, want %#x", i, got, (10+i)*hp)
		}
	}
	if p.next != 4 {
		t.Errorf("looked at %d pages, want 4", p.next)
	}
	b.Bytes[len(b.Bytes)-1] = 1 // the whole buffer is mapped and writable
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if pages, chunks := a.inUse(); pages != 0 || chunks != 0 {
		t.Fatalf("after Free: %d pages in %d chunks", pages, chunks)
	}

	// No run in the pages the pool gives: a clear error, nothing left mapped.
	gaps := make([]uint64, 200)
	for i := range gaps {
		gaps[i] = uint64(2*i) * hp
	}
	a.m = &tagPhys{fakeMapper: m, script: gaps}
	_, err = a.Alloc(2 * hp)
	if err == nil || !strings.Contains(err.Error(), "2 physically contiguous 64 KiB hugepages") || !strings.Contains(err.Error(), "vfio-pci") {
		t.Fatalf("no run: err = %v", err)
	}
	if _, chunks := a.inUse(); chunks != 0 {
		t.Fatalf("failed allocation left %d chunks", chunks)
	}
	_ = a.close()
}

func TestParseIOVARanges(t *testing.T) {
	ne := binary.NativeEndian
	// struct vfio_iommu_type1_info and its chain as Linux 6.1 lays it out (capabilities
	// packed, not aligned): migration (id 2, 32 bytes) at 24, DMA available (id 3, 12
	// bytes) at 56, IOVA ranges (id 1) with two ranges at 68.
	const size = 68 + 16 + 2*16
	b := make([]byte, size)
	ne.PutUint32(b[0:], size)
	ne.PutUint32(b[4:], vfioIOMMUInfoPgsizes|vfioIOMMUInfoCaps)
	ne.PutUint64(b[8:], 0x40201000)
	ne.PutUint32(b[16:], 24)
	ne.PutUint16(b[24:], 2)
	ne.PutUint32(b[28:], 56)
	ne.PutUint16(b[56:], 3)
	ne.PutUint32(b[60:], 68)
	ne.PutUint32(b[64:], 65535)
	ne.PutUint16(b[68:], vfioIOMMUType1InfoCapIOVARange)
	ne.PutUint16(b[70:], 1)
	ne.PutUint32(b[72:], 0)
	ne.PutUint32(b[76:], 2)
	ne.PutUint64(b[84:], 0)
	ne.PutUint64(b[92:], 0xfedfffff)
	ne.PutUint64(b[100:], 0xfef00000)
	ne.PutUint64(b[108:], 1<<39-1)
	ranges, found, err := parseIOVARanges(b)
	if err != nil || !found || len(ranges) != 2 || ranges[0] != (iovaRange{0, 0xfedfffff}) || ranges[1] != (iovaRange{0xfef00000, 1<<39 - 1}) {
		t.Fatalf("ranges %v found %v err %v", ranges, found, err)
	}
	if _, _, err := parseIOVARanges(b[:size-8]); err == nil || !strings.Contains(err.Error(), "run past") {
		t.Errorf("truncated reply: err = %v", err)
	}
	if _, _, err := parseIOVARanges(b[:70]); err == nil || !strings.Contains(err.Error(), "bad capability offset") {
		t.Errorf("reply ending inside a capability header: err = %v", err)
	}
	// A chain without the IOVA capability, and one that loops.
	ne.PutUint32(b[60:], 0)
	if _, found, err := parseIOVARanges(b); found || err != nil {
		t.Errorf("no IOVA capability: found %v err %v", found, err)
	}
	ne.PutUint32(b[60:], 24)
	if _, _, err := parseIOVARanges(b); err == nil {
		t.Error("a capability chain that loops was accepted")
	}
	ne.PutUint32(b[16:], 1000)
	if _, _, err := parseIOVARanges(b); err == nil || !strings.Contains(err.Error(), "bad capability offset") {
		t.Errorf("offset past the reply: err = %v", err)
	}
	if _, _, err := parseIOVARanges(b[:20]); err == nil {
		t.Error("a reply shorter than vfio_iommu_type1_info was accepted")
	}
}

func TestIOVASpace(t *testing.T) {
	// Below the floor, a hole for the MSI window, and the rest of a 39-bit space.
	s, err := newIOVASpace([]iovaRange{{0xfef00000, 1<<39 - 1}, {0, 0xfedfffff}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.get(HugePageSize)
	b, _ := s.get(3 * HugePageSize)
	if a != iovaFloor*2 && a < iovaFloor {
		t.Fatalf("first IOVA %#x below %#x", a, iovaFloor)
	}
	if a%HugePageSize != 0 || b%HugePageSize != 0 || b < a+HugePageSize {
		t.Fatalf("IOVAs %#x %#x", a, b)
	}
	s.put(a, HugePageSize)
	if c, _ := s.get(HugePageSize); c != a {
		t.Fatalf("released IOVA not reused: %#x", c)
	}
	// A 1 GiB mapping gets a 1 GiB-aligned IOVA; those below 4 GiB skip the MSI hole.
	var last uint64
	for range 4 {
		g, err := s.get(1 << 30)
		if err != nil {
			t.Fatal(err)
		}
		if g%(1<<30) != 0 || (g < 0xfee00000+1<<20 && g+1<<30 > 0xfee00000) {
			t.Fatalf("1 GiB IOVA %#x misaligned or across the MSI window", g)
		}
		last = g
	}
	if last < 0xfef00000 {
		t.Fatalf("fourth 1 GiB IOVA %#x is not in the upper range", last)
	}
	if _, err := s.get(1 << 40); err == nil || !strings.Contains(err.Error(), "exhausted") || !strings.Contains(err.Error(), "0x7fffffffff") {
		t.Fatalf("oversized IOVA: %v", err)
	}
	if _, err := newIOVASpace([]iovaRange{{0, 0xfffff}}); err == nil {
		t.Fatal("an IOVA space only below the floor was accepted")
	}
	if _, err := newIOVASpace(legacyIOVAWindow); err != nil {
		t.Fatal(err)
	}
}

// TestCloseOrder opens a UIO controller in a fake sysfs (regular files for resource0
// and config) and checks what Close promises: bus mastering is off before any DMA
// memory is unmapped, and the command register ends as it was, without Bus Master.
func TestCloseOrder(t *testing.T) {
	f := newFakeSysfs(t)
	dir := f.device("0000:00:09.0", "0x010802", "0x1b36", "0x0010", DriverUIO, -1, "0")
	f.write(dir+"/resource0", strings.Repeat("\x00", 16384))
	cfg := make([]byte, 256)
	cfg[pciCommandOffset] = 0x00 // as uio_pci_generic leaves it: no memory space, no bus master
	f.write(dir+"/config", string(cfg))
	cfgPath := filepath.Join(f.root, dir, "config")
	command := func() uint16 {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint16(b[pciCommandOffset:])
	}
	var busMasterAtUnmap []bool
	var m *fakeMapper
	old := newUIOArena
	t.Cleanup(func() { newUIOArena = old })
	newUIOArena = func() *arena {
		a, fm := testArena(false)
		m = fm
		fm.onUnmap = func() { busMasterAtUnmap = append(busMasterAtUnmap, command()&pciCommandBusMaster != 0) }
		return a
	}

	d, err := Open("0000:00:09.0")
	if err != nil {
		t.Fatal(err)
	}
	if got := command(); got != pciCommandMemorySpace|pciCommandBusMaster {
		t.Fatalf("command register after Open = %#x, want memory space and bus master", got)
	}
	if d.Registers().Size() != 16384 {
		t.Fatalf("BAR0 %d bytes", d.Registers().Size())
	}
	if _, err := d.Allocator().Alloc(3 * bus.PageSize); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Allocator().Alloc(HugePageSize); err != nil {
		t.Fatal(err)
	}
	// The driver clears bus mastering itself after disabling the controller, through
	// the allocator (the driver core's seam) or the device.
	stopper, ok := d.Allocator().(interface{ StopDMA() error })
	if !ok {
		t.Fatal("the allocator offers no StopDMA")
	}
	if err := stopper.StopDMA(); err != nil {
		t.Fatal(err)
	}
	if got := command(); got != pciCommandMemorySpace {
		t.Fatalf("command register after ClearBusMaster = %#x, want memory space only", got)
	}
	if err := d.ClearBusMaster(); err != nil {
		t.Fatalf("second ClearBusMaster: %v", err)
	}
	// Close clears it too, when the driver did not: set it again behind its back.
	b, _ := os.ReadFile(cfgPath)
	binary.LittleEndian.PutUint16(b[pciCommandOffset:], pciCommandMemorySpace|pciCommandBusMaster)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if len(busMasterAtUnmap) != 2 {
		t.Fatalf("%d DMA unmaps on Close, want 2 (two chunks)", len(busMasterAtUnmap))
	}
	for i, on := range busMasterAtUnmap {
		if on {
			t.Errorf("DMA unmap %d happened with bus mastering on", i)
		}
	}
	if len(m.mapped) != 0 {
		t.Errorf("%d mappings left after Close", len(m.mapped))
	}
	if got := command(); got != 0 {
		t.Errorf("command register after Close = %#x, want the original 0", got)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.ClearBusMaster(); err != nil {
		t.Errorf("ClearBusMaster after Close: %v", err)
	}
}
