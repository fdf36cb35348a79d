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
				return writeControllerJSON(a.stdout, ctrls, identifyUserspaceJSON)
			}
			if len(ctrls) == 0 {
				fmt.Fprintln(a.stdout, "No NVMe controllers found. Try the simulated one: nvmeperf -q 32 -o 4k -w randread -t 5 -r 'trtype:sim'")
				return nil
			}
			return writeControllerList(a.stdout, ctrls, func(addr string) (string, []string, error) {
				return identifyUserspace(addr)
			})
		},
	}
	cmd.Flags().StringVar(&format, "output-format", "text", "text or json")
	return cmd
}

// writeControllerList prints one block per controller. identify attaches a
// userspace-bound controller and returns a controller line and namespace lines.
func writeControllerList(w io.Writer, ctrls []pcie.Controller, identify func(string) (string, []string, error)) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tVID:DID\tDRIVER\tNUMA\tDETAILS")
	for _, c := range ctrls {
		details := ""
		var extra []string
		if c.Userspace() {
			line, nss, err := identify(c.Address)
			if err != nil {
				details = "cannot identify: " + err.Error()
			} else {
				details, extra = line, nss
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

func identifyUserspace(addr string) (string, []string, error) {
	id, err := trid.Parse("trtype:PCIe traddr:" + addr)
	if err != nil {
		return "", nil, err
	}
	c, err := driver.Attach(id, driver.Options{})
	if err != nil {
		return "", nil, err
	}
	defer c.Close()
	return describeController(c)
}

// describeController summarises an attached controller for list.
func describeController(c *driver.Controller) (string, []string, error) {
	n := c.NVMe
	ident := n.Identify()
	mdts := "no limit"
	if ident.MDTS != 0 {
		mdts = fmt.Sprintf("%d (%d KiB)", ident.MDTS, n.MaxTransfer()>>10)
	}
	line := fmt.Sprintf("%s SN %s FW %s; NVMe %s; MQES %d; MDTS %s; I/O queues %d",
		ident.Model(), ident.Serial(), ident.Firmware(), n.Version(), n.CAP().MQES(), mdts, n.IOQueues())
	var nss []string
	for _, ns := range n.Namespaces() {
		line := fmt.Sprintf("NSID %d: %d blocks of %d B (%s), format %s, LBA format %d of %d",
			ns.ID(), ns.Sectors(), ns.SectorSize(), humanBytes(ns.Capacity()), ns.Format(),
			ns.Identify().FormatIndex(), int(ns.Identify().NLBAF)+1)
		if err := ns.CheckFormat(); err != nil {
			line += " — not usable: " + err.Error()
		}
		nss = append(nss, line)
	}
	return line, nss, nil
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
