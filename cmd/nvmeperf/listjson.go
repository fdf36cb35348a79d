package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/nvme"
	"github.com/nvmeperf/nvmeperf/driver/pcie"
)

// listSchema names `nvmeperf list --output-format json`'s document; keys are only ever
// added.
const listSchema = "nvmeperf.list/v1"

type listDocument struct {
	Schema      string           `json:"schema"`
	Controllers []listController `json:"controllers"`
}

type listController struct {
	Address       string          `json:"address"` // PCI domain:bus:device.function
	VendorID      string          `json:"vendor_id"`
	DeviceID      string          `json:"device_id"`
	Driver        string          `json:"driver"` // "" when unbound
	NUMANode      int             `json:"numa_node"`
	Userspace     bool            `json:"userspace"` // bound to vfio-pci or uio_pci_generic
	TRID          string          `json:"trid"`      // what to pass to -r
	Model         string          `json:"model"`
	Serial        string          `json:"serial"`
	Firmware      string          `json:"firmware"`
	BlockDevices  []string        `json:"block_devices"` // /dev paths of kernel-bound ones
	NVMeVersion   string          `json:"nvme_version,omitempty"`
	MQES          int             `json:"mqes,omitempty"`
	MaxTransfer   int             `json:"max_transfer_bytes,omitempty"`
	IOQueues      int             `json:"io_queues,omitempty"`
	Namespaces    []listNamespace `json:"namespaces"`
	IdentifyError string          `json:"identify_error,omitempty"`
	// Identified (userspace-bound) controllers only, absent otherwise: the controller
	// memory buffer, and Doorbell Buffer Config (OACS bit 8) offered and used.
	CMB                  *nvme.CMBInfo `json:"cmb,omitempty"`
	DoorbellBufferConfig *bool         `json:"doorbell_buffer_config,omitempty"`
	ShadowDoorbells      *bool         `json:"shadow_doorbells,omitempty"`
}

type listNamespace struct {
	NSID          uint32 `json:"nsid"`
	Blocks        uint64 `json:"blocks"`
	BlockSize     uint32 `json:"block_size"`
	CapacityBytes uint64 `json:"capacity_bytes"`
	MetadataBytes int    `json:"metadata_bytes"`
}

// fillListController fills in what an attached controller's registers and Identify
// data say.
func fillListController(c *driver.Controller, lc *listController) {
	n := c.NVMe
	ident := n.Identify()
	lc.Model, lc.Serial, lc.Firmware = ident.Model(), ident.Serial(), ident.Firmware()
	lc.NVMeVersion = n.Version().String()
	lc.MQES, lc.MaxTransfer, lc.IOQueues = int(n.CAP().MQES()), n.MaxTransfer(), n.IOQueues()
	for _, ns := range n.Namespaces() {
		lc.Namespaces = append(lc.Namespaces, listNamespace{NSID: ns.ID(), Blocks: ns.Sectors(), BlockSize: ns.SectorSize(),
			CapacityBytes: ns.Capacity(), MetadataBytes: int(ns.Identify().CurrentFormat().MS())})
	}
	cmb := n.CMB()
	dbbuf, shadow := ident.DoorbellBufferConfig(), n.ShadowDoorbells()
	lc.CMB, lc.DoorbellBufferConfig, lc.ShadowDoorbells = &cmb, &dbbuf, &shadow
}

func writeControllerJSON(w io.Writer, ctrls []pcie.Controller, attach attachFunc) error {
	d := listDocument{Schema: listSchema, Controllers: []listController{}}
	for _, c := range ctrls {
		lc := listController{
			Address: c.Address, VendorID: hex4(c.VendorID), DeviceID: hex4(c.DeviceID), Driver: c.Driver,
			NUMANode: c.NUMANode, Userspace: c.Userspace(), TRID: "trtype:PCIe traddr:" + c.Address,
			Model: c.Model, Serial: c.Serial, Firmware: c.Firmware,
			BlockDevices: prefixAll("/dev/", c.BlockDevices), Namespaces: []listNamespace{},
		}
		if c.Userspace() {
			if ctrl, err := attach(c.Address); err != nil {
				lc.IdentifyError = err.Error()
			} else {
				fillListController(ctrl, &lc)
				ctrl.Close()
			}
		}
		d.Controllers = append(d.Controllers, lc)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

func hex4(v uint16) string { return fmt.Sprintf("%04x", v) }
