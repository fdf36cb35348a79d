// Package pcie gives the NVMe driver core access to real PCIe controllers from userspace:
// BAR0 registers and DMA memory, through VFIO (with an IOMMU) or uio_pci_generic
// (without one). It also finds NVMe controllers in sysfs and reports how each is bound.
//
// Nothing here touches a device's registers except through the MMIO it returns, so the
// driver core alone decides when BAR0 is read and can recover from a fault on a removed
// device.
package pcie

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// sysfsRoot and devRoot are where sysfs and device nodes are; tests point them at fake
// trees.
var (
	sysfsRoot = "/sys"
	devRoot   = "/dev"
	procRoot  = "/proc"
)

// nvmeClass is the PCI class code of an NVM Express I/O controller: mass storage (01),
// non-volatile memory (08), NVMe programming interface (02).
const nvmeClass = 0x010802

// Drivers a controller can be bound to for userspace access.
const (
	DriverVFIO  = "vfio-pci"
	DriverUIO   = "uio_pci_generic"
	DriverNVMe  = "nvme"
	driverStub  = "pci-stub"
	driverPort  = "pcieport"
	setupScript = "scripts/setup.sh"
)

// Controller is one NVMe PCI function as sysfs describes it.
type Controller struct {
	Address      string // canonical domain:bus:device.function, e.g. "0000:04:00.0"
	VendorID     uint16
	DeviceID     uint16
	Driver       string   // "nvme", "vfio-pci", "uio_pci_generic", "" when unbound
	IOMMUGroup   int      // -1 when the device has no IOMMU group
	NUMANode     int      // -1 when unknown
	BlockDevices []string // kernel-bound only: block devices of its namespaces, e.g. "nvme0n1"
	Model        string   // kernel-bound only, from sysfs
	Serial       string
	Firmware     string
}

// Userspace reports whether the controller is bound to a driver nvmeperf can use.
func (c Controller) Userspace() bool { return c.Driver == DriverVFIO || c.Driver == DriverUIO }

var addressPattern = regexp.MustCompile(`^(?:([0-9a-f]{4,8}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$`)

// CanonicalAddress returns addr as domain:bus:device.function with a four-digit domain
// in lower case ("04:00.0" and "0000:04:00.0" are both "0000:04:00.0").
func CanonicalAddress(addr string) (string, error) {
	m := addressPattern.FindStringSubmatch(strings.ToLower(strings.TrimSpace(addr)))
	if m == nil {
		return "", fmt.Errorf("pcie: PCI address %q is not of the form [domain:]bus:device.function, e.g. 0000:04:00.0", addr)
	}
	domain := m[1]
	if domain == "" {
		domain = "0000"
	}
	d, _ := strconv.ParseUint(domain, 16, 32)
	dev, _ := strconv.ParseUint(m[3], 16, 8)
	if dev > 0x1f {
		return "", fmt.Errorf("pcie: PCI address %q: device number %#x is above 0x1f", addr, dev)
	}
	return fmt.Sprintf("%04x:%s:%s.%s", d, m[2], m[3], m[4]), nil
}

func devicesDir() string { return filepath.Join(sysfsRoot, "bus", "pci", "devices") }

// Probe lists every PCI function with the NVMe class code, sorted by address.
func Probe() ([]Controller, error) {
	entries, err := os.ReadDir(devicesDir())
	if err != nil {
		return nil, fmt.Errorf("pcie: listing PCI devices: %w", err)
	}
	var out []Controller
	for _, e := range entries {
		class, err := readHex(filepath.Join(devicesDir(), e.Name(), "class"))
		if err != nil || class != nvmeClass {
			continue
		}
		c, err := describe(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}

// Describe returns what sysfs says about the controller at addr.
func Describe(addr string) (Controller, error) {
	canon, err := CanonicalAddress(addr)
	if err != nil {
		return Controller{}, err
	}
	if _, err := os.Stat(filepath.Join(devicesDir(), canon)); err != nil {
		return Controller{}, notFound(canon)
	}
	return describe(canon)
}

func notFound(addr string) error {
	msg := fmt.Sprintf("pcie: no PCI device at %s", addr)
	if ctrls, err := Probe(); err == nil {
		var addrs []string
		for _, c := range ctrls {
			addrs = append(addrs, c.Address+" ("+driverName(c.Driver)+")")
		}
		if len(addrs) == 0 {
			msg += "; this machine has no NVMe controllers"
		} else {
			msg += "; NVMe controllers here: " + strings.Join(addrs, ", ")
		}
	}
	return errors.New(msg)
}

func driverName(d string) string {
	if d == "" {
		return "no driver"
	}
	return d
}

func describe(addr string) (Controller, error) {
	dir := filepath.Join(devicesDir(), addr)
	c := Controller{Address: addr, IOMMUGroup: -1, NUMANode: -1}
	vendor, err := readHex(filepath.Join(dir, "vendor"))
	if err != nil {
		return c, fmt.Errorf("pcie: %s: %w", addr, err)
	}
	device, err := readHex(filepath.Join(dir, "device"))
	if err != nil {
		return c, fmt.Errorf("pcie: %s: %w", addr, err)
	}
	c.VendorID, c.DeviceID = uint16(vendor), uint16(device)
	c.Driver = linkBase(filepath.Join(dir, "driver"))
	if g := linkBase(filepath.Join(dir, "iommu_group")); g != "" {
		if n, err := strconv.Atoi(g); err == nil {
			c.IOMMUGroup = n
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "numa_node")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			c.NUMANode = n
		}
	}
	if c.Driver == DriverNVMe {
		c.kernelDetails(dir)
	}
	return c, nil
}

var (
	namespaceName = regexp.MustCompile(`^nvme\d+n\d+$`)
	// nvme<subsystem>c<controller>n<namespace>: a hidden path under native multipath;
	// its block device is the head nvme<subsystem>n<namespace>.
	pathName = regexp.MustCompile(`^nvme(\d+)c\d+n(\d+)$`)
)

// kernelDetails fills in what the kernel nvme driver publishes under
// <device>/nvme/nvmeN: identify strings and the namespaces' block devices.
func (c *Controller) kernelDetails(dir string) {
	ctrls, err := os.ReadDir(filepath.Join(dir, "nvme"))
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, ctrl := range ctrls {
		cdir := filepath.Join(dir, "nvme", ctrl.Name())
		if c.Model == "" {
			c.Model = readTrim(filepath.Join(cdir, "model"))
			c.Serial = readTrim(filepath.Join(cdir, "serial"))
			c.Firmware = readTrim(filepath.Join(cdir, "firmware_rev"))
		}
		entries, err := os.ReadDir(cdir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if m := pathName.FindStringSubmatch(name); m != nil {
				name = "nvme" + m[1] + "n" + m[2]
			} else if !namespaceName.MatchString(name) {
				continue
			}
			if !seen[name] {
				seen[name] = true
				c.BlockDevices = append(c.BlockDevices, name)
			}
		}
	}
	sort.Slice(c.BlockDevices, func(i, j int) bool { return lessNatural(c.BlockDevices[i], c.BlockDevices[j]) })
}

// lessNatural orders nvme0n2 before nvme0n10.
func lessNatural(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func readHex(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimPrefix(strings.TrimSpace(string(b)), "0x")
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a hex number: %w", path, strings.TrimSpace(string(b)), err)
	}
	return v, nil
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func linkBase(path string) string {
	target, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}
