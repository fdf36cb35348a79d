// Package driver opens what the user names — a transport ID (`trtype:sim ...`,
// `trtype:PCIe traddr:...`) or a kernel device path — as workload targets. It is the
// one place that knows every transport; the transports themselves live in the
// sub-packages (sim, pcie, uring) and the NVMe driver core in nvme.
package driver

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/pcie"
	"github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/trid"
)

// Options tune how targets are opened.
type Options struct {
	// SimCPUs are the CPUs a simulated controller's device thread may be pinned to
	// (normally those no worker uses). A sim trid's own cpus key wins.
	SimCPUs []int
	// NVMe tunes controller bring-up (NVMe.KeepAlive: fabrics keep alive, -k).
	NVMe nvme.Options
	// TCPDigests asks NVMe/TCP controllers for header and data digests (-H, -I).
	TCPDigests nvmetcp.Digests
}

// Controller is an attached NVMe controller and how it is carried, for reports and
// `nvmeperf list`.
type Controller struct {
	ID        trid.ID
	NVMe      *nvme.Controller
	Transport string
	// Sim is the simulated controller behind a sim transport (nil otherwise), for
	// fault injection and statistics.
	Sim   *sim.Controller
	close func() error
}

// Close detaches the controller and releases its transport.
func (c *Controller) Close() error {
	if c.close == nil {
		return nil
	}
	f := c.close
	c.close = nil
	return f()
}

// Attach brings up the controller a parsed transport ID names.
func Attach(id trid.ID, opts Options) (*Controller, error) {
	switch id.Type {
	case trid.Sim:
		cfg, err := sim.ParseOptions(id.Options)
		if err != nil {
			return nil, err
		}
		if len(cfg.CPUs) == 0 {
			cfg.CPUs = opts.SimCPUs
		}
		dev, err := sim.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("driver: starting the simulated controller: %w", err)
		}
		ctrl, err := nvme.Attach(dev.Registers(), dev.Allocator(), opts.NVMe)
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("driver: simulated controller: %w", err)
		}
		return &Controller{ID: id, NVMe: ctrl, Transport: "sim", Sim: dev, close: func() error {
			return errors.Join(ctrl.Detach(), dev.Close())
		}}, nil
	case trid.PCIe:
		dev, err := pcie.Open(id.TrAddr)
		if err != nil {
			return nil, err
		}
		opts.NVMe.BARs = dev // the controller memory buffer's BAR
		ctrl, err := nvme.Attach(dev.Registers(), dev.Allocator(), opts.NVMe)
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("driver: controller %s: %w", id.TrAddr, err)
		}
		return &Controller{ID: id, NVMe: ctrl, Transport: "PCIe", close: func() error {
			return errors.Join(ctrl.Detach(), dev.Close())
		}}, nil
	case trid.TCP:
		return attachTCP(id, opts)
	}
	return nil, fmt.Errorf("driver: transport %s is not supported yet (supported: PCIe, TCP, sim)", id.Type)
}

// OpenTRID parses s, attaches its controller and returns one target per selected
// namespace (the trid's ns key, or every active namespace). Closing the last of the
// targets detaches the controller.
func OpenTRID(s string, opts Options) ([]target.Target, *Controller, error) {
	id, err := trid.Parse(s)
	if err != nil {
		return nil, nil, err
	}
	if id.Type == trid.TCP && (id.SubNQN == "" || id.SubNQN == trid.DiscoveryNQN) {
		return openDiscovered(id, opts)
	}
	c, err := Attach(id, opts)
	if err != nil {
		return nil, nil, err
	}
	return namespaceTargets(id, c)
}

// namespaceTargets returns one target per selected namespace of c (the trid's ns key,
// or every active namespace). Closing the last of them closes c.
func namespaceTargets(id trid.ID, c *Controller) ([]target.Target, *Controller, error) {
	var nss []*nvme.Namespace
	if id.NSID != 0 {
		ns := c.NVMe.Namespace(id.NSID)
		if ns == nil {
			c.Close()
			return nil, nil, fmt.Errorf("driver: %s: namespace %d is not active (active: %v)", id, id.NSID, nsids(c.NVMe))
		}
		nss = append(nss, ns)
	} else {
		nss = c.NVMe.Namespaces()
	}
	if len(nss) == 0 {
		c.Close()
		return nil, nil, fmt.Errorf("driver: %s: the controller has no active namespace", id)
	}
	var mu sync.Mutex
	left := len(nss)
	release := func() error {
		mu.Lock()
		left--
		last := left == 0
		mu.Unlock()
		if last {
			return c.Close()
		}
		return nil
	}
	targets := make([]target.Target, len(nss))
	for i, ns := range nss {
		info := target.Info{
			Name:      fmt.Sprintf("%s (%s) NSID %d", displayTransport(c.Transport), displayAddr(id), ns.ID()),
			TRID:      id.String(),
			Transport: c.Transport,
		}
		targets[i] = nvme.NewTarget(ns, info, release)
	}
	return targets, c, nil
}

func nsids(c *nvme.Controller) []uint32 {
	var ids []uint32
	for _, ns := range c.Namespaces() {
		ids = append(ids, ns.ID())
	}
	return ids
}

// displayTransport names a transport the way spdk_nvme_perf's rows do.
func displayTransport(t string) string {
	switch t {
	case "PCIe":
		return "PCIE"
	case "sim":
		return "SIM"
	}
	return t
}

func displayAddr(id trid.ID) string {
	if id.TrAddr != "" {
		return id.TrAddr
	}
	return "embedded"
}
