package pcie

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// sysfs `resource` parses into BARs, and memory BARs are cut out of the IOVA ranges,
// so that no DMA buffer's IOVA can be taken by the controller for its own CMB.
func TestReadBARsAndExclude(t *testing.T) {
	f := newFakeSysfs(t)
	f.write("sys/bus/pci/devices/0000:00:04.0/resource",
		"0x00000000febf0000 0x00000000febf3fff 0x0000000000140204\n"+
			"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"+
			"0x00000000fc000000 0x00000000fcffffff 0x000000000014220c\n"+
			"0x000000000000c000 0x000000000000c07f 0x0000000000040101\n"+
			"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"+
			"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"+
			"0x0000000000000000 0x0000000000000000 0x0000000000000000\n")
	bars, err := readBARs("0000:00:04.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != 6 || bars[2].start != 0xfc000000 || bars[2].end != 0xfcffffff || bars[2].flags&ioresourceMem == 0 {
		t.Fatalf("BARs %+v", bars)
	}
	got := excludeBARs([]iovaRange{{start: 1 << 20, end: 0xfedfffff}, {start: 0xfef00000, end: 1<<39 - 1}}, bars)
	want := []iovaRange{
		{start: 1 << 20, end: 0xfbffffff},
		{start: 0xfd000000, end: 0xfebeffff},
		{start: 0xfebf4000, end: 0xfedfffff},
		{start: 0xfef00000, end: 1<<39 - 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ranges %v, want %v (the I/O BAR at 0xc000 stays)", got, want)
	}
}

// Under UIO a BAR maps from sysfs resourceN; its Addr is the bus address from
// `resource`. A regular file stands in for the BAR.
func TestMapBARUIO(t *testing.T) {
	f := newFakeSysfs(t)
	dir := "sys/bus/pci/devices/0000:00:05.0"
	f.write(dir+"/resource", "0xfe000000 0xfe003fff 0x40200\n0 0 0\n0xc0000000 0xc0001fff 0x14220c\n")
	f.write(dir+"/resource2", string(make([]byte, 8192)))
	d := &Device{ctrl: Controller{Address: "0000:00:05.0"}}
	defer d.Close()
	b, err := d.MapBAR(2)
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 8192 || b.Addr != 0xc0000000 {
		t.Fatalf("BAR 2: %d bytes at %#x", b.Len(), b.Addr)
	}
	b.Bytes[100] = 7
	if err := unix.Msync(b.Bytes, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(f.root, dir, "resource2"))
	if raw[100] != 7 {
		t.Error("write through the mapping did not reach resource2")
	}
	for _, bad := range []int{1, 6, -1} {
		if _, err := d.MapBAR(bad); err == nil {
			t.Errorf("MapBAR(%d) did not fail", bad)
		}
	}
}
