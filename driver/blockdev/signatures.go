package blockdev

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// signature is a magic value at a fixed byte offset that marks a partition table,
// file system or volume (the offsets are those the formats' own specifications or
// util-linux's libblkid probe).
type signature struct {
	what   string
	offset int
	magic  string
	// valid, when set, rejects chance matches of short magics in random data (a disk a
	// previous benchmark filled).
	valid func(b []byte) bool
}

// signatureSpan is how many bytes from the start of a device ReadSignatures reads: enough
// for the furthest magic (btrfs at 64 KiB + 64, swap on 64 KiB pages).
const signatureSpan = 128 << 10

var signatures = []signature{
	{what: "an MBR partition table or boot sector", offset: 510, magic: "\x55\xaa", valid: mbrValid},
	{what: "a GPT partition table", offset: 512, magic: "EFI PART"},  // LBA 1 of 512-byte sectors
	{what: "a GPT partition table", offset: 4096, magic: "EFI PART"}, // LBA 1 of 4 KiB sectors
	{what: "an ext2/3/4 file system", offset: 1080, magic: "\x53\xef", valid: extValid},
	{what: "an XFS file system", offset: 0, magic: "XFSB"},
	{what: "a btrfs file system", offset: 65600, magic: "_BHRfS_M"},
	{what: "an F2FS file system", offset: 1024, magic: "\x10\x20\xf5\xf2"},
	{what: "a FAT12/16 file system", offset: 54, magic: "FAT1"},
	{what: "a FAT32 file system", offset: 82, magic: "FAT32   "},
	{what: "an exFAT file system", offset: 3, magic: "EXFAT   "},
	{what: "an NTFS file system", offset: 3, magic: "NTFS    "},
	{what: "an ISO 9660 file system", offset: 32769, magic: "CD001"},
	{what: "a squashfs file system", offset: 0, magic: "hsqs"},
	{what: "swap space", offset: 4096 - 10, magic: "SWAPSPACE2"}, // the last 10 bytes of the first page
	{what: "swap space", offset: 4096 - 10, magic: "SWAP-SPACE"},
	{what: "swap space", offset: 16384 - 10, magic: "SWAPSPACE2"},
	{what: "swap space", offset: 65536 - 10, magic: "SWAPSPACE2"},
	{what: "an LVM2 physical volume", offset: 512, magic: "LABELONE"}, // label in sector 1 (0-3 allowed)
	{what: "an LVM2 physical volume", offset: 0, magic: "LABELONE"},
	{what: "an LVM2 physical volume", offset: 1024, magic: "LABELONE"},
	{what: "an LVM2 physical volume", offset: 1536, magic: "LABELONE"},
	{what: "a LUKS encrypted volume", offset: 0, magic: "LUKS\xba\xbe"},
	{what: "a LUKS2 encrypted volume", offset: 16384, magic: "SKUL\xba\xbe"},    // secondary header
	{what: "a Linux RAID (md) member", offset: 0, magic: "\xfc\x4e\x2b\xa9"},    // superblock 1.1
	{what: "a Linux RAID (md) member", offset: 4096, magic: "\xfc\x4e\x2b\xa9"}, // superblock 1.2
	{what: "a bcache member", offset: 4096 + 24, magic: "\xc6\x85\x73\xf6\x4e\x1a\x45\xca\x82\x65\xf5\x7f\x48\xba\x6d\x81"},
}

// mbrValid accepts 0x55AA only when the four partition entries' boot indicators are 0x00
// or 0x80, as every MBR writes them.
func mbrValid(b []byte) bool {
	for i := 0; i < 4; i++ {
		if flag := b[446+16*i]; flag != 0 && flag != 0x80 {
			return false
		}
	}
	return true
}

// extValid accepts the ext magic only with a plausible s_log_block_size (1 KiB..64 KiB)
// and s_rev_level (0 or 1).
func extValid(b []byte) bool {
	logBlock := binary.LittleEndian.Uint32(b[1024+24:])
	rev := binary.LittleEndian.Uint32(b[1024+76:])
	return logBlock <= 6 && rev <= 1
}

// MatchSignatures lists what the signatures found in b (the start of a device) say it
// holds, e.g. "an ext2/3/4 file system (magic 0xEF53 at byte 1080)". Each kind is
// named once.
func MatchSignatures(b []byte) []string {
	var found []string
	seen := map[string]bool{}
	for _, s := range signatures {
		end := s.offset + len(s.magic)
		if end > len(b) || string(b[s.offset:end]) != s.magic || seen[s.what] {
			continue
		}
		if s.valid != nil && (len(b) < 2048 || !s.valid(b)) {
			continue
		}
		seen[s.what] = true
		found = append(found, fmt.Sprintf("%s (magic %s at byte %d)", s.what, describeMagic(s.magic), s.offset))
	}
	return found
}

// describeMagic prints text magics quoted and binary ones as hex.
func describeMagic(m string) string {
	for i := 0; i < len(m); i++ {
		if m[i] < 0x20 || m[i] > 0x7e {
			return fmt.Sprintf("% x", m)
		}
	}
	return fmt.Sprintf("%q", m)
}

// ReadSignatures reads the start of the device or file at path and returns
// MatchSignatures of it. It reads with O_DIRECT where it can, so that data a benchmark
// just wrote around the page cache is what it sees.
func ReadSignatures(path string) ([]string, error) {
	buf, err := unix.Mmap(-1, 0, signatureSpan, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("blockdev: buffer for reading %s: %w", path, err)
	}
	defer unix.Munmap(buf)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("blockdev: opening %s to look for data on it: %w", path, err)
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// A device smaller than the span ends in a partial read of its last block.
			if errors.Is(err, unix.EINVAL) && n > 0 {
				break
			}
			return nil, fmt.Errorf("blockdev: reading %s at %d: %w", path, n, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return MatchSignatures(buf[:n]), nil
}
