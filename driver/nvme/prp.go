package nvme

import (
	"encoding/binary"
	"fmt"

	"github.com/nvmeperf/nvmeperf/driver/bus"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

// Physical Region Page handling (NVMe Base 2.0, section 4.1.1 "Physical Region Page
// Entry and List"). The memory page size ps is the controller's (CC.MPS): 4 KiB unless
// CAP.MPSMIN asks for more.

const (
	pageSize      = bus.PageSize
	maxPRPListLen = 1 << 20 // entries; far beyond any MDTS, keeps list sizing sane
)

// prpListPages is how many list pages a transfer of up to maxBytes needs in the worst
// case — a first page that holds only its last dword — with chaining: a full list page
// gives its last entry to the pointer to the next page when more entries follow.
func prpListPages(maxBytes, ps int) int {
	prpsPerPage := ps / 8
	if maxBytes <= 4 {
		return 0
	}
	entries := (maxBytes - 4 + ps - 1) / ps // pages after the first
	if entries <= 1 {
		return 0
	}
	pages := 1
	for entries > prpsPerPage {
		entries -= prpsPerPage - 1
		pages++
	}
	return pages
}

// buildPRPs fills cmd.PRP1/PRP2 for data, writing a PRP list into list when the
// transfer spans more than two pages. list must hold prpListPages(len, ps) pages of ps
// bytes, starting on a page boundary. With no data the command is left alone: commands
// such as Create I/O CQ carry their own PRP1.
func buildPRPs(cmd *spec.Command, data bus.Buffer, list bus.Buffer, ps int) error {
	pageSize, pageMask, prpsPerPage := ps, uint64(ps-1), ps/8
	n := data.Len()
	if n == 0 {
		return nil
	}
	addr := data.Addr
	if addr&3 != 0 {
		return fmt.Errorf("nvme: data buffer at device address %#x is not dword aligned (PRP entries need 4-byte alignment)", addr)
	}
	cmd.PRP1 = addr
	first := pageSize - int(addr&pageMask)
	if n <= first {
		cmd.PRP2 = 0
		return nil
	}
	rest := n - first
	next := addr + uint64(first) // page aligned from here on
	if rest <= pageSize {
		cmd.PRP2 = next
		return nil
	}
	entries := (rest + pageSize - 1) / pageSize
	if entries > maxPRPListLen || list.Len() < pageSize*prpListPages(n, ps) {
		return fmt.Errorf("nvme: transfer of %d bytes needs a PRP list larger than the %d bytes reserved", n, list.Len())
	}
	cmd.PRP2 = list.Addr
	page := 0
	slot := 0
	for i := 0; i < entries; i++ {
		// Chain: the last slot of a full page points to the next list page when more
		// than one entry remains.
		if slot == prpsPerPage-1 && entries-i > 1 {
			page++
			binary.LittleEndian.PutUint64(list.Bytes[(page-1)*pageSize+slot*8:], list.Addr+uint64(page*pageSize))
			slot = 0
		}
		binary.LittleEndian.PutUint64(list.Bytes[page*pageSize+slot*8:], next+uint64(i*pageSize))
		slot++
	}
	return nil
}
