package driver

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/trid"
)

// tcpHostConfig is the NVMe/TCP host configuration of a trid: its address, subsystem
// and host NQN (the trid's hostnqn key, or this machine's stable default).
func tcpHostConfig(id trid.ID, opts Options) nvmetcp.HostConfig {
	cfg := nvmetcp.HostConfig{
		Addr:    net.JoinHostPort(id.TrAddr, id.TrSvcID),
		SubNQN:  id.SubNQN,
		Digests: opts.TCPDigests,
	}
	if cfg.SubNQN == "" {
		cfg.SubNQN = spec.DiscoveryNQN
	}
	if id.HostNQN != "" {
		cfg.HostNQN, cfg.HostID = id.HostNQN, nvmetcp.HostIDFor(id.HostNQN)
	} else {
		cfg.HostNQN, cfg.HostID = nvmetcp.DefaultHostNQN()
	}
	return cfg
}

// attachTCP connects to the NVMe/TCP controller a trid names and brings it up with the
// controller logic every transport shares.
func attachTCP(id trid.ID, opts Options) (*Controller, error) {
	host := nvmetcp.NewHost(tcpHostConfig(id, opts))
	ctrl, err := nvme.AttachFabric(host, opts.NVMe)
	if err != nil {
		return nil, fmt.Errorf("driver: NVMe/TCP controller %s (%s): %w", net.JoinHostPort(id.TrAddr, id.TrSvcID), id.SubNQN, err)
	}
	return &Controller{ID: id, NVMe: ctrl, Transport: "TCP", close: ctrl.Detach}, nil
}

// Discover connects to the discovery controller at the trid's address and returns a
// trid for every NVM subsystem its log lists on NVMe/TCP.
func Discover(id trid.ID, opts Options) ([]trid.ID, error) {
	d := id
	d.SubNQN = trid.DiscoveryNQN
	c, err := attachTCP(d, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if !c.NVMe.IsDiscovery() {
		return nil, fmt.Errorf("driver: %s: the controller at subnqn %s is not a discovery controller", id.TrAddr, trid.DiscoveryNQN)
	}
	entries, err := c.NVMe.DiscoveryLog()
	if err != nil {
		return nil, fmt.Errorf("driver: discovery at %s: %w", net.JoinHostPort(id.TrAddr, id.TrSvcID), err)
	}
	var ids []trid.ID
	for i := range entries {
		e := &entries[i]
		if e.SUBTYPE != spec.SubsystemTypeNVM || e.TRTYPE != spec.TransportTCP {
			continue
		}
		addr := strings.TrimRight(strings.TrimRight(string(e.TRADDR[:]), "\x00"), " ")
		port := strings.TrimRight(strings.TrimRight(string(e.TRSVCID[:]), "\x00"), " ")
		nqn := strings.TrimRight(string(e.SUBNQN[:]), "\x00")
		fam := "IPv4"
		if e.ADRFAM == spec.AddressFamilyIPv6 {
			fam = "IPv6"
		}
		s := fmt.Sprintf("trtype:TCP adrfam:%s traddr:%s trsvcid:%s subnqn:%s", fam, addr, port, nqn)
		if id.HostNQN != "" {
			s += " hostnqn:" + id.HostNQN
		}
		if id.NSID != 0 {
			s += " ns:" + strconv.FormatUint(uint64(id.NSID), 10)
		}
		sub, err := trid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("driver: discovery log entry %d: %w", i, err)
		}
		ids = append(ids, sub)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("driver: the discovery controller at %s lists no NVM subsystem on NVMe/TCP", net.JoinHostPort(id.TrAddr, id.TrSvcID))
	}
	return ids, nil
}

// openDiscovered runs discovery and opens every NVM subsystem listed, as SPDK perf
// does with a trid without subnqn. The returned controller is the first subsystem's;
// each subsystem's controller closes with its last target.
func openDiscovered(id trid.ID, opts Options) ([]target.Target, *Controller, error) {
	ids, err := Discover(id, opts)
	if err != nil {
		return nil, nil, err
	}
	var all []target.Target
	var first *Controller
	for _, sub := range ids {
		c, err := Attach(sub, opts)
		if err == nil {
			var ts []target.Target
			ts, c, err = namespaceTargets(sub, c)
			all = append(all, ts...)
			if first == nil {
				first = c
			}
		}
		if err != nil {
			var errs []error
			for _, t := range all {
				errs = append(errs, t.Close())
			}
			return nil, nil, errors.Join(append([]error{fmt.Errorf("driver: discovered subsystem %s: %w", sub.SubNQN, err)}, errs...)...)
		}
	}
	return all, first, nil
}
