package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/pcie"
	"github.com/nvmeperf/nvmeperf/driver/trid"
)

func (a *app) listCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List NVMe controllers: address, binding, identity, namespaces and queue limits",
		Long: `list shows every NVMe controller (PCI class 010802). Controllers bound for userspace
(vfio-pci, uio_pci_generic) are attached and identified: model, serial, firmware,
namespaces with size and LBA format, MQES, MDTS and I/O queues. Kernel-bound ones are
listed with their block devices and the identity sysfs gives.`,
		Args: argsUsage(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "text", "json":
			default:
				return usagef("list --output-format %q: want text or json", format)
			}
			ctrls, err := a.probe()
			if err != nil {
				return fmt.Errorf("probing PCI devices: %w", err)
			}
			if format == "json" {
				return writeControllerJSON(a.stdout, ctrls, attachPCIe)
			}
			if len(ctrls) == 0 {
				fmt.Fprintln(a.stdout, "No NVMe controllers found. Try the simulated one: nvmeperf -q 32 -o 4k -w randread -t 5 -r 'trtype:sim'")
				return nil
			}
			return writeControllerList(a.stdout, ctrls, attachPCIe)
		},
	}
	cmd.Flags().StringVar(&format, "output-format", "text", "text or json")
	return cmd
}

// attachFunc attaches the userspace-bound controller at a PCI address for list (tests
// put simulated controllers behind addresses).
type attachFunc func(addr string) (*driver.Controller, error)

// attachPCIe attaches a userspace-bound controller with the options a run uses by
// default, so what list shows about the CMB and shadow doorbells is what a run gets.
func attachPCIe(addr string) (*driver.Controller, error) {
	id, err := trid.Parse("trtype:PCIe traddr:" + addr)
	if err != nil {
		return nil, err
	}
	return driver.Attach(id, driver.Options{})
}

// writeControllerList prints one block per controller: a line, then for an attached
// userspace-bound controller its CMB, shadow doorbell and namespace lines.
func writeControllerList(w io.Writer, ctrls []pcie.Controller, attach attachFunc) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tVID:DID\tDRIVER\tNUMA\tDETAILS")
	for _, c := range ctrls {
		details := ""
		var extra []string
		if c.Userspace() {
			if ctrl, err := attach(c.Address); err != nil {
				details = "cannot identify: " + err.Error()
			} else {
				details, extra = describeController(ctrl)
				ctrl.Close()
			}
		} else {
			parts := []string{}
			if c.Model != "" {
				parts = append(parts, fmt.Sprintf("%s SN %s FW %s", c.Model, c.Serial, c.Firmware))
			}
			if len(c.BlockDevices) > 0 {
				parts = append(parts, "block: "+strings.Join(prefixAll("/dev/", c.BlockDevices), " "))
			}
			details = strings.Join(parts, "; ")
		}
		fmt.Fprintf(tw, "%s\t%04x:%04x\t%s\t%d\t%s\n", c.Address, c.VendorID, c.DeviceID, orNone(c.Driver), c.NUMANode, details)
		for _, l := range extra {
			fmt.Fprintf(tw, "\t\t\t\t  %s\n", l)
		}
	}
	return tw.Flush()
}

// describeController summarises an attached controller for list: a controller line,
// then lines for its controller memory buffer, shadow doorbells and namespaces.
func describeController(c *driver.Controller) (string, []string) {
	n := c.NVMe
	ident := n.Identify()
	mdts := "no limit"
	if ident.MDTS != 0 {
		mdts = fmt.Sprintf("%d (%d KiB)", ident.MDTS, n.MaxTransfer()>>10)
	}
	line := fmt.Sprintf("%s SN %s FW %s; NVMe %s; MQES %d; MDTS %s; I/O queues %d",
		ident.Model(), ident.Serial(), ident.Firmware(), n.Version(), n.CAP().MQES(), mdts, n.IOQueues())
	extra := []string{"CMB: " + n.CMB().String(), "shadow doorbells: " + shadowDoorbells(ident.DoorbellBufferConfig(), n.ShadowDoorbells())}
	for _, ns := range n.Namespaces() {
		nsLine := fmt.Sprintf("NSID %d: %d blocks of %d B (%s), format %s, LBA format %d of %d",
			ns.ID(), ns.Sectors(), ns.SectorSize(), humanBytes(ns.Capacity()), ns.Format(),
			ns.Identify().FormatIndex(), int(ns.Identify().NLBAF)+1)
		if err := ns.CheckFormat(); err != nil {
			nsLine += " — not usable: " + err.Error()
		}
		extra = append(extra, nsLine)
	}
	return line, extra
}

// shadowDoorbells says whether the controller offers Doorbell Buffer Config (OACS bit
// 8) and whether the driver uses it.
func shadowDoorbells(supported, used bool) string {
	switch {
	case !supported:
		return "no (Doorbell Buffer Config not supported)"
	case used:
		return "yes (Doorbell Buffer Config supported, used)"
	default:
		return "no (Doorbell Buffer Config supported, not enabled)"
	}
}

func humanBytes(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(b)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
