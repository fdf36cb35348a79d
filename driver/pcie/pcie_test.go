package pcie

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

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
	delete(m.mapped, addr)
	m.iova.put(addr, uint64(len(mem)))
	m.unmaps++
	return nil
}

// testArena uses ordinary pages: only tests may, the product always asks for hugepages.
func testArena(contig bool) (*arena, *fakeMapper) {
	m := &fakeMapper{iova: newIOVASpace(), mapped: map[uint64]int{}, contig: contig}
	a := newArena(m)
	a.hugepages = false
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
	f := newFakeSysfs(t)
	f.write("proc/meminfo", "MemTotal: 1 kB\nHugePages_Total:       4\nHugePages_Free:        1\n")
	err := hugepageError(5<<20, os.ErrNotExist)
	for _, want := range []string{"3 more free 2 MiB hugepage(s) needed", "1 free", "HUGEMEM=2048 scripts/setup.sh", "nr_hugepages"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("hugepage error %q lacks %q", err, want)
		}
	}
}

func TestIOVASpace(t *testing.T) {
	s := newIOVASpace()
	a, _ := s.get(HugePageSize)
	b, _ := s.get(3 * HugePageSize)
	if a != iovaStart&^(HugePageSize-1)+HugePageSize && a < iovaStart {
		t.Fatalf("first IOVA %#x below the window", a)
	}
	if a%HugePageSize != 0 || b%HugePageSize != 0 || b < a+HugePageSize || b+3*HugePageSize > 1<<39 {
		t.Fatalf("IOVAs %#x %#x", a, b)
	}
	s.put(a, HugePageSize)
	if c, _ := s.get(HugePageSize); c != a {
		t.Fatalf("released IOVA not reused: %#x", c)
	}
	if _, err := s.get(1 << 33); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("oversized IOVA: %v", err)
	}
}
