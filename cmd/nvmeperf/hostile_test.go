package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nvmeperf/nvmeperf/driver/blockdev/looptest"
)

// The hostile-input table: every case is a command line a careless or hostile user
// could type. Each asserts the exit status, that the message names the flag or field
// and the value, that stdout is one valid JSON document whenever JSON was asked for,
// that no crash text reaches stderr, and that no byte of the user's data changed (every
// fixture file and loop device is checksummed before and after every case).

// hostileFixture is the user's data the cases must not touch.
type hostileFixture struct {
	dir      string
	data     string // 4 MiB of random bytes: a read target, never written
	link     string // symlink to data
	hard     string // hard link of data
	fsImage  string // a regular file holding an ext4 (or XFS-signed) image
	empty    string // an empty file
	loop     string // a loop device with a read-only mounted ext4; "" without root
	loopLink string // symlink to loop (as /dev/disk/by-* links are)
	backing  string // the loop device's backing file
	small    string // a 1 MiB tmpfs mount point, for ENOSPC; "" without root
	sums     map[string]string
}

func newHostileFixture(t *testing.T) *hostileFixture {
	t.Helper()
	dir := t.TempDir()
	f := &hostileFixture{dir: dir}
	f.data = filepath.Join(dir, "data.img")
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	mustWrite(t, f.data, b)
	f.link = filepath.Join(dir, "link.img")
	must(t, os.Symlink(f.data, f.link))
	f.hard = filepath.Join(dir, "hard.img")
	must(t, os.Link(f.data, f.hard))
	f.empty = filepath.Join(dir, "empty.img")
	mustWrite(t, f.empty, nil)
	f.fsImage = filepath.Join(dir, "fs.img")
	img := make([]byte, 8<<20)
	copy(img, "XFSB") // a file system signature, replaced by a real ext4 when mkfs exists
	mustWrite(t, f.fsImage, img)
	if mkfs, err := exec.LookPath("mkfs.ext4"); err == nil {
		if out, err := exec.Command(mkfs, "-q", "-F", f.fsImage).CombinedOutput(); err != nil {
			t.Logf("mkfs.ext4 on a file: %v: %s (keeping the XFS signature)", err, out)
		}
	}
	if os.Geteuid() == 0 {
		f.setupLoop(t)
		small := filepath.Join(dir, "small")
		must(t, os.Mkdir(small, 0o755))
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small).CombinedOutput(); err == nil {
			f.small = small
			t.Cleanup(func() { exec.Command("umount", small).Run() })
		} else {
			t.Logf("no tmpfs for ENOSPC cases: %v: %s", err, out)
		}
	}
	f.sums = f.checksums(t)
	return f
}

// setupLoop attaches a loop device with an ext4 file system mounted read-only (so the
// kernel itself writes nothing to it while the cases run).
func (f *hostileFixture) setupLoop(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Log("mkfs.ext4 not installed: no loop device cases")
		return
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Log("losetup not installed: no loop device cases")
		return
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Logf("no loop driver (%v): no loop device cases", err)
		return
	}
	dev := looptest.New(t, 16<<20, looptest.Options{})
	if out, err := exec.Command(mkfs, "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", dev, err, out)
	}
	mnt := filepath.Join(f.dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	if out, err := exec.Command("mount", "-o", "ro", dev, mnt).CombinedOutput(); err != nil {
		t.Logf("mount %s: %v: %s: no loop device cases", dev, err, out)
		return
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	must(t, err)
	f.loop, f.backing = dev, strings.TrimSpace(string(b))
	f.loopLink = filepath.Join(f.dir, "by-id-loop")
	must(t, os.Symlink(dev, f.loopLink))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	must(t, os.WriteFile(path, b, 0o644))
}

// checksums reads every piece of user data, devices with O_DIRECT so that what a
// benchmark wrote around the page cache is seen.
func (f *hostileFixture) checksums(t *testing.T) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, p := range []string{f.data, f.fsImage, f.empty, f.loop, f.backing} {
		if p == "" {
			continue
		}
		sums[p] = sumFile(t, p)
	}
	return sums
}

func (f *hostileFixture) verifyUnchanged(t *testing.T) {
	t.Helper()
	for p, sum := range f.sums {
		if got := sumFile(t, p); got != sum {
			t.Fatalf("user data changed: %s", p)
		}
	}
}

func sumFile(t *testing.T, path string) string {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	must(t, err)
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	must(t, err)
	defer unix.Munmap(buf)
	h := sha256.New()
	for off := int64(0); ; {
		n, err := unix.Pread(fd, buf, off)
		if err == unix.EINTR {
			continue
		}
		must(t, err)
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		off += int64(n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hostileCase is one command line and what must come of it.
type hostileCase struct {
	name string
	// args may use {dir} {data} {link} {hard} {fs} {empty} {loop} {looplink} {backing}
	// {small}; a case whose placeholders the machine cannot provide is skipped.
	args []string
	code int
	// want are substrings of stderr: the flag or field, the value, what is accepted.
	want []string
	// status, when set, is the prefix of the JSON status (JSON must be asked for).
	status string
	// check runs extra assertions after the case.
	check func(t *testing.T, f *hostileFixture, r e2eRun)
	// extraFile is opened read-only and passed to the process as fd 3.
	extraFile string
	// stdoutTo and stderrTo redirect the stream, appending, as a shell's >> does.
	stdoutTo, stderrTo string
}

const sim16 = "trtype:sim nssize:16m"

func hostileCases() []hostileCase {
	base := func(extra ...string) []string {
		return append([]string{"-q", "4", "-o", "4k", "-w", "randread", "-t", "0.2", "-r", sim16}, extra...)
	}
	js := func(args ...string) []string { return append(args, "--output-format", "json") }
	kernel := func(w string, extra ...string) []string {
		return append([]string{"-q", "4", "-o", "4k", "-w", w, "-t", "0.2"}, extra...)
	}
	noFile := func(name string) func(t *testing.T, f *hostileFixture, r e2eRun) {
		return func(t *testing.T, f *hostileFixture, r e2eRun) {
			if _, err := os.Lstat(filepath.Join(f.dir, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was left behind (err %v)", name, err)
			}
		}
	}
	noCrash := func(t *testing.T, _ *hostileFixture, r e2eRun) {
		for _, bad := range []string{"invalid memory address", "nil pointer", "runtime error", "controller failed: nvme: controller failed", "controller failed: controller failed"} {
			if strings.Contains(r.stderr, bad) || strings.Contains(r.stdout, bad) {
				t.Errorf("output carries %q:\n%s\n%s", bad, r.stderr, r.stdout)
			}
		}
	}
	var cases []hostileCase
	// Every simulator key with a bad value: exit 2 naming the key and the value.
	for _, kv := range []string{"namespaces:0", "mqes:0", "mdts:99", "ioqueues:0", "readlat:-1s", "writelat:2s", "proglat:0",
		"channels:0", "dies:0", "nandpage:1000", "wcache:maybe", "store:disk", "memlimit:x", "rdydelay:1h", "to:0",
		"cpus:9999", "failnth:0", "failnsid:0", "removeafter:2h", "fatalafter:-1s"} {
		key, val, _ := strings.Cut(kv, ":")
		cases = append(cases, hostileCase{name: "sim key " + kv, args: base("-r", "trtype:sim nssize:16m "+kv), code: 2,
			want: []string{`key "` + key + `"`, `"` + val + `"`, "want"}})
	}
	for _, kv := range []string{"ns:0", "ns:x", "subnqn:x", "trsvcid:4420"} {
		cases = append(cases, hostileCase{name: "trid key " + kv, args: base("-r", "trtype:sim "+kv), code: 2, want: []string{"-r", kv}})
	}
	return append(cases, []hostileCase{
		// I/O above MDTS is split (issue 9), so it runs; a -O the block size cannot take
		// is refused after the targets open, still with a JSON document.
		{name: "I/O above MDTS is split in JSON mode", args: js(base("-o", "1m", "-r", sim16+" mdts:1")...), code: 0, status: "ok"},
		{name: "io unit not a block multiple in JSON mode", args: js(base("-o", "8k", "-O", "1024", "-r", sim16+" lbasize:4096")...), code: 2,
			status: "error", want: []string{"-O 1024", "4096-byte blocks"}},
		{name: "inactive namespace", args: base("-r", "trtype:sim ns:99"), code: 1, want: []string{"ns:99", "namespace 99 is not active"}},
		// Flags: every bad value is exit 2 naming the flag, the value and the range.
		{name: "depth 0", args: base("-q", "0"), code: 2, want: []string{"-q 0", "1..65535"}},
		{name: "depth too big", args: base("-q", "70000"), code: 2, want: []string{"-q 70000", "1..65535"}},
		{name: "depth not a number", args: base("-q", "lots"), code: 2, want: []string{"lots", "-q"}},
		{name: "size garbage", args: base("-o", "4x"), code: 2, want: []string{`-o "4x"`, "4k"}},
		{name: "size not sector multiple", args: base("-o", "1000"), code: 2, want: []string{"-o 1000", "multiple of 512"}},
		{name: "size too big", args: base("-o", "128m"), code: 2, want: []string{"-o 128m", "64m"}},
		{name: "size overflows", args: base("-o", "99999999999999999999k"), code: 2, want: []string{"-o", "99999999999999999999k"}},
		{name: "bad pattern", args: base("-w", "scribble"), code: 2, want: []string{`-w "scribble"`, "randrw"}},
		{name: "mix without -M", args: base("-w", "randrw"), code: 2, want: []string{"-M", "required"}},
		{name: "mix over 100", args: base("-w", "rw", "-M", "101"), code: 2, want: []string{"-M 101", "0..100"}},
		{name: "time 1e12", args: base("-t", "1e12"), code: 2, want: []string{"-t 1e+12", "at most 31536000"}},
		{name: "time negative", args: base("-t", "-1"), code: 2, want: []string{"-t -1", "more than 0"}},
		{name: "time NaN", args: base("-t", "NaN"), code: 2, want: []string{"-t NaN", "at most"}},
		{name: "time garbage", args: base("-t", "soon"), code: 2, want: []string{"soon", "-t"}},
		{name: "warm-up negative", args: base("-a", "-5"), code: 2, want: []string{"-a -5", "0 to 86400"}},
		{name: "-d zero", args: base("-d", "0"), code: 2, want: []string{"-d 0", "at least 1"}},
		{name: "-d negative", args: base("-d", "-1"), code: 2, want: []string{"-1", "-d"}},
		// The overflow: -d split over 2 jobs (two namespaces here, so it does not
		// depend on the machine's cores) must not wrap to 2 I/Os and "ok".
		{name: "-d overflows over jobs", args: js("-q", "4", "-o", "4k", "-w", "randread", "-t", "5", "-d", "9223372036854775809", "-r", "trtype:sim nssize:1m namespaces:2"),
			code: 2, status: "error", want: []string{"-d 9223372036854775809", "2 jobs", "9223372036854775807"}},
		{name: "-d max over jobs", args: base("-d", "18446744073709551615", "-r", "trtype:sim nssize:1m namespaces:3"), code: 2, want: []string{"-d 18446744073709551615", "jobs (namespaces × cores)"}},
		{name: "core mask selects nothing", args: base("-c", "0x0"), code: 2, want: []string{`-c "0x0"`, "selects no core"}},
		{name: "core mask garbage", args: base("-c", "0xzz"), code: 2, want: []string{`-c "0xzz"`, "hex"}},
		{name: "core list out of range", args: base("-c", "[0-2000]"), code: 2, want: []string{"0-2000", "0-1023"}},
		{name: "core not available", args: base("-c", "[1000]"), code: 2, want: []string{"-c [1000]", "core 1000"}},
		{name: "qpairs above the limit", args: base("-P", "2000"), code: 2, want: []string{"-P 2000", "1..1024"}},
		{name: "io queue size 1", args: base("--io-queue-size", "1"), code: 2, want: []string{"--io-queue-size 1", "2..65536"}},
		{name: "negative completions", args: base("-C", "-1"), code: 2, want: []string{"-C -1"}},
		{name: "negative zipf", args: base("-F", "-1"), code: 2, want: []string{"-F -1"}},
		{name: "zipf on sequential", args: base("-F", "0.8", "-w", "read"), code: 2, want: []string{"-F 0.8", "random"}},
		{name: "alignment not a power of two", args: base("-A", "3"), code: 2, want: []string{"-A 3", "power of two"}},
		{name: "-LLL", args: base("-LLL"), code: 2, want: []string{"-L given 3 times"}},
		{name: "output format xml", args: base("--output-format", "xml"), code: 2, want: []string{`--output-format "xml"`, "text or json"}},
		{name: "doorbell garbage", args: base("--doorbell", "sometimes"), code: 2, want: []string{`--doorbell "sometimes"`, "per-poll"}},
		{name: "verify and verify-read", args: base("--verify", "--verify-read"), code: 2, want: []string{"--verify and --verify-read"}},
		{name: "verify-read with writes", args: base("--verify-read", "-w", "randwrite"), code: 2, want: []string{"--verify-read with -w randwrite"}},
		{name: "label without value", args: base("--label", "novalue"), code: 2, want: []string{`--label "novalue"`, "key=value"}},
		{name: "seed garbage", args: base("--seed", "-3"), code: 2, want: []string{"--seed", "-3"}},
		// io_uring flags with no kernel target are refused, not ignored.
		{name: "--size without kernel target", args: base("--size", "1g"), code: 2, want: []string{"--size", "kernel devices and files"}},
		{name: "--hipri without kernel target", args: base("--hipri"), code: 2, want: []string{"--hipri", "no such target"}},
		{name: "--sqpoll without kernel target", args: base("--sqpoll"), code: 2, want: []string{"--sqpoll", "no such target"}},
		{name: "--passthru without kernel target", args: base("--passthru"), code: 2, want: []string{"--passthru", "no such target"}},
		{name: "unknown flag", args: base("--bogus"), code: 2, want: []string{"unknown flag: --bogus"}},
		// A flag error before --output-format json still gives a JSON document.
		{name: "unknown flag before JSON format", args: append([]string{"--bogus"}, js(base()...)...), code: 2, status: "error", want: []string{"--bogus"}},
		{name: "bad value before JSON format=", args: append(base("-q", "x"), "--output-format=json"), code: 2, status: "error", want: []string{"-q"}},
		{name: "missing -q with JSON", args: js("-o", "4k", "-w", "read", "-t", "1"), code: 2, status: "error", want: []string{"-q", "required"}},

		// Transport IDs: bad keys are usage errors (exit 2) naming the key and value.
		{name: "sim unknown key", args: base("-r", "trtype:sim bogus:1"), code: 2, want: []string{`"bogus"`, "accepted"}},
		{name: "sim nssize 0", args: base("-r", "trtype:sim nssize:0"), code: 2, want: []string{"nssize", `"0"`}},
		{name: "sim lbasize 1000", args: base("-r", "trtype:sim lbasize:1000"), code: 2, want: []string{"lbasize", "1000"}},
		{name: "sim model unknown", args: base("-r", "trtype:sim model:quantum"), code: 2, want: []string{"model", "quantum"}},
		{name: "sim faillba reversed", args: base("-r", "trtype:sim faillba:9-3"), code: 2, want: []string{"faillba", "9-3"}},
		{name: "sim faillba at 2^64-1", args: base("-r", "trtype:sim faillba:18446744073709551615"), code: 2, want: []string{"faillba", "18446744073709551615"}},
		{name: "sim failstatus success", args: base("-r", "trtype:sim failstatus:0/0"), code: 2, want: []string{"failstatus", "0/0"}},
		{name: "sim faildelay too long", args: base("-r", "trtype:sim faildelay:2h"), code: 2, want: []string{"faildelay", "2h"}},
		{name: "sim JSON bad key", args: js(base("-r", "trtype:sim nssize:lots")...), code: 2, status: "error", want: []string{"nssize", "lots"}},
		{name: "unknown transport", args: base("-r", "trtype:carrier-pigeon"), code: 2, want: []string{"-r", "carrier-pigeon"}},
		{name: "PCIe address garbage", args: base("-r", "trtype:PCIe traddr:zz"), code: 2, want: []string{"-r", "zz"}},
		{name: "empty transport ID", args: base("-r", ""), code: 2, want: []string{"-r"}},
		{name: "verify on a discard store", args: base("--verify", "-w", "randrw", "-M", "50", "-r", "trtype:sim nssize:4m store:discard"), code: 2, want: []string{"--verify", "store discard", "store:mem"}},
		{name: "verify-read on a store above memlimit", args: base("--verify-read", "-r", "trtype:sim nssize:2g"), code: 2, want: []string{"--verify-read", "keep no data"}},
		{name: "I/O larger than the namespace", args: js(base("-o", "2m", "-r", "trtype:sim nssize:1m")...), code: 1, status: "error", want: []string{"I/O size 2097152", "capacity"}},

		// The verdict: never "ok" when it is not.
		{name: "-Q with every I/O failing", args: js("-q", "4", "-o", "4k", "-w", "randread", "-d", "200", "-t", "30", "-Q", "-r", sim16+" faillba:0-18446744073709551615"),
			code: 1, status: "io_errors", want: []string{"every I/O failed"}},
		{name: "every I/O failing without -Q", args: js("-q", "4", "-o", "4k", "-w", "randread", "-d", "200", "-t", "30", "-r", sim16+" faillba:0-18446744073709551615"),
			code: 1, status: "io_errors", want: []string{"unrecovered read error"}},
		{name: "-Q with some I/O failing", args: js("-q", "4", "-o", "4k", "-w", "randread", "-d", "2000", "-t", "30", "-Q", "-r", sim16+" faillba:0-1999"),
			code: 0, status: "io_errors", want: []string{"counted with -Q"}},
		{name: "verify-read on blocks never written", args: js("-q", "4", "-o", "4k", "-w", "randread", "-d", "100", "-t", "30", "--verify-read", "-r", "trtype:sim nssize:4m store:mem"),
			code: 1, status: "verify_failed", want: []string{"verify-read", "carry no verify pattern"}},
		{name: "verify round trip", args: js("-q", "8", "-o", "4k", "-w", "randrw", "-M", "50", "-d", "2000", "-t", "30", "--verify", "-r", "trtype:sim nssize:1m store:mem"),
			code: 0, status: "ok"},
		{name: "device removed", args: js("-q", "4", "-o", "4k", "-w", "randread", "-t", "30", "-r", sim16+" removeafter:100ms"),
			code: 1, status: "device_failed", want: []string{"run status: device_failed", "device removed"}, check: noCrash},
		{name: "device fatal status", args: js("-q", "4", "-o", "4k", "-w", "randread", "-t", "30", "-r", sim16+" fatalafter:100ms"),
			code: 1, status: "device_failed", want: []string{"run status: device_failed", "fatal"}, check: noCrash},
		{name: "text mode failure on stderr", args: []string{"-q", "4", "-o", "4k", "-w", "randread", "-d", "50", "-t", "30", "-r", sim16 + " failnth:3"},
			code: 1, want: []string{"run status: io_errors", "unrecovered read error"}},
		{name: "plain run", args: js("-q", "4", "-o", "4k", "-w", "randread", "-d", "100", "-t", "30", "-r", sim16), code: 0, status: "ok"},

		// --output: never a target, a device or a file backing anything; checked and
		// opened before any I/O.
		{name: "output is the target", args: js(kernel("randread", "{data}", "--output", "{data}")...), code: 2, status: "error", want: []string{"--output {data}", "target"}},
		{name: "output is a symlink to the target", args: kernel("randread", "{data}", "--output", "{link}"), code: 2, want: []string{"--output {link}", "target {data}"}},
		{name: "output is a hard link of the target", args: kernel("randread", "{data}", "--output", "{hard}"), code: 2, want: []string{"--output {hard}", "same file"}},
		{name: "output is /proc/self/fd of the target", args: kernel("randread", "{data}", "--output", "/proc/self/fd/3"), extraFile: "{data}", code: 2, want: []string{"--output /proc/self/fd/3", "target"}},
		{name: "output over the target via ./", args: kernel("randread", "{data}", "--output", "{dir}/./data.img"), code: 2, want: []string{"--output", "target"}},
		{name: "output is a target to be created", args: kernel("randwrite", "--size", "1m", "{dir}/new.img", "--output", "{dir}/new.img"), code: 2, want: []string{"--output {dir}/new.img", "target"}, check: noFile("new.img")},
		{name: "output is a block device", args: js(base("--output", "{loop}")...), code: 2, status: "error", want: []string{"--output {loop}", "block device"}},
		{name: "output is a by-id link to a block device", args: base("--output", "{looplink}"), code: 2, want: []string{"--output {looplink}", "block device"}},
		{name: "output is a loop backing file", args: base("--output", "{backing}"), code: 2, want: []string{"--output {backing}", "backs the loop device {loop}", "mounted"}},
		{name: "output is a file system image", args: base("--output", "{fs}"), code: 2, want: []string{"--output {fs}", "file system"}},
		{name: "output is a directory", args: base("--output", "{dir}"), code: 2, want: []string{"--output {dir}", "directory"}},
		{name: "output is /dev/zero", args: base("--output", "/dev/zero"), code: 2, want: []string{"--output /dev/zero", "character device"}},
		{name: "output in a missing directory", args: js(base("-t", "30", "-d", "1000000000", "--output", "{dir}/missing/r.json")...), code: 2, status: "error", want: []string{"--output {dir}/missing/r.json", "no such file or directory"}},
		// --json-output (text and JSON from one run) follows --output's rules.
		{name: "json-output is the target", args: kernel("randread", "{data}", "--output-format", "text,json", "--json-output", "{data}"), code: 2, want: []string{"--json-output {data}", "target"}},
		{name: "json-output is a symlink to the target", args: kernel("randread", "{data}", "--output-format", "text,json", "--json-output", "{link}"), code: 2, want: []string{"--json-output {link}", "target {data}"}},
		{name: "json-output is a loop backing file", args: base("--output-format", "text,json", "--json-output", "{backing}"), code: 2, want: []string{"--json-output {backing}", "backs the loop device {loop}"}},
		{name: "json-output in a missing directory", args: base("--output-format", "text,json", "--json-output", "{dir}/missing/r.json"), code: 2, want: []string{"--json-output {dir}/missing/r.json", "no such file or directory"}},
		{name: "failed open removes the new json-output file", args: kernel("randread", "{dir}", "--output-format", "text,json", "--json-output", "{dir}/never3.json"), code: 1, want: []string{"{dir}", "not a regular file"}, check: noFile("never3.json")},
		{name: "output to /dev/null", args: base("--output", "/dev/null"), code: 0},
		{name: "output to a new file", args: js(base("--output", "{dir}/report.json")...), code: 0,
			check: func(t *testing.T, f *hostileFixture, r e2eRun) {
				b, err := os.ReadFile(filepath.Join(f.dir, "report.json"))
				if err != nil || !json.Valid(b) || r.stdout != "" {
					t.Errorf("report file %q (err %v), stdout %q", b, err, r.stdout)
				}
				os.Remove(filepath.Join(f.dir, "report.json"))
			}},
		{name: "usage error creates no output file", args: base("-q", "0", "--output", "{dir}/never.json"), code: 2, want: []string{"-q 0"}, check: noFile("never.json")},
		{name: "failed open in JSON mode reports into --output", args: js(kernel("randread", "{dir}", "--output", "{dir}/fail.json")...), code: 1, want: []string{"{dir}", "not a regular file"},
			check: func(t *testing.T, f *hostileFixture, r e2eRun) {
				p := filepath.Join(f.dir, "fail.json")
				b, err := os.ReadFile(p)
				var d map[string]any
				if err != nil || json.Unmarshal(b, &d) != nil || !strings.HasPrefix(fmt.Sprint(d["status"]), "error") || r.stdout != "" {
					t.Errorf("--output holds %q (err %v), stdout %q", b, err, r.stdout)
				}
				os.Remove(p)
			}},
		{name: "failed open removes the new output file", args: kernel("randread", "{dir}", "--output", "{dir}/never2.txt"), code: 1, want: []string{"{dir}", "not a regular file"}, check: noFile("never2.txt")},

		// stdout and stderr as the shell opened them are outputs too.
		{name: "stdout appended to the target", args: kernel("randread", "{data}"), stdoutTo: "{data}", code: 2, want: []string{"stdout", "target {data}"}},
		{name: "stdout appended to the target, JSON", args: js(kernel("randread", "{data}")...), stdoutTo: "{data}", code: 2, want: []string{"stdout", "target"}},
		{name: "stderr appended to the target", args: kernel("randread", "{data}", "--output", "/dev/null"), stderrTo: "{data}", code: 2},
		{name: "stdout appended to a loop backing file", args: base(), stdoutTo: "{backing}", code: 2, want: []string{"stdout", "backs the loop device"}},
		{name: "stdout appended to a file system image", args: base(), stdoutTo: "{fs}", code: 2, want: []string{"stdout", "file system"}},

		// Targets: a write workload never destroys what it does not own.
		{name: "write on a loop backing file", args: kernel("randwrite", "{backing}"), code: 2, want: []string{"{backing}", "backs the loop device {loop}", "--allow-destructive"}},
		{name: "write on a mounted loop device", args: js(kernel("randwrite", "{loop}")...), code: 2, status: "error", want: []string{"{loop}", "mounted on", "--allow-destructive"}},
		{name: "write on a by-id link to it", args: kernel("write", "{looplink}"), code: 2, want: []string{"{looplink}", "mounted"}},
		{name: "mixed write on a file system image", args: kernel("randrw", "-M", "90", "{fs}"), code: 2, want: []string{"{fs}", "file system", "--allow-destructive"}},
		{name: "missing file without --size", args: kernel("randwrite", "{dir}/nothere.img"), code: 2, want: []string{"{dir}/nothere.img", "does not exist", "--size"}},
		{name: "empty file without --size", args: kernel("randread", "{empty}"), code: 2, want: []string{"{empty}", "empty", "--size"}},
		{name: "--size on a block device", args: kernel("randread", "--size", "1m", "{loop}"), code: 2, want: []string{"--size 1m", "{loop}", "regular files"}},
		{name: "--size garbage", args: kernel("randread", "--size", "10x", "{dir}/x.img"), code: 2, want: []string{`--size "10x"`}},
		{name: "--size fills the file system", args: kernel("randwrite", "--size", "64m", "{small}/big.img"), code: 1, want: []string{"{small}/big.img", "no space left"},
			check: func(t *testing.T, f *hostileFixture, _ e2eRun) {
				if _, err := os.Lstat(filepath.Join(f.small, "big.img")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a partial file was left on the full file system (err %v)", err)
				}
			}},
		{name: "created file removed when a later target fails", args: kernel("randwrite", "--size", "1m", "{dir}/first.img", "{dir}/nodir/second.img"), code: 1, want: []string{"{dir}/nodir/second.img"}, check: noFile("first.img")},
		{name: "a directory as target", args: kernel("randread", "{dir}"), code: 1, want: []string{"{dir}", "not a regular file"}},
		{name: "passthru on a file", args: kernel("randread", "--passthru", "{data}"), code: 1, want: []string{"passthrough needs an NVMe"}},

		// Subcommands.
		{name: "verify-image without arguments", args: []string{"verify-image"}, code: 2, want: []string{"verify-image", "1 argument"}},
		{name: "verify-image with two", args: []string{"verify-image", "{data}", "{fs}"}, code: 2, want: []string{"verify-image", "got 2"}},
		{name: "verify-image bad LBA size", args: []string{"verify-image", "--lba-size", "7", "{data}"}, code: 2, want: []string{"--lba-size 7", "multiple of 8"}},
		{name: "verify-image unknown flag", args: []string{"verify-image", "--bogus", "{data}"}, code: 2, want: []string{"--bogus"}},
		{name: "verify-image missing file", args: []string{"verify-image", "{dir}/missing.img"}, code: 1, want: []string{"{dir}/missing.img", "no such file"}},
		{name: "verify-image on data with no pattern", args: []string{"verify-image", "{empty}"}, code: 1, want: []string{"{empty}", "nothing was verified"}},
		{name: "verify-image on random data", args: []string{"verify-image", "--lba-size", "4096", "{data}"}, code: 1, want: []string{"{data}", "mismatched"}},
		{name: "list with an argument", args: []string{"list", "extra"}, code: 2, want: []string{"list takes no arguments", "extra"}},
	}...)
}

// expand fills a case's placeholders; ok is false when the fixture lacks one.
func (f *hostileFixture) expand(s string) (string, bool) {
	repl := map[string]string{
		"{dir}": f.dir, "{data}": f.data, "{link}": f.link, "{hard}": f.hard, "{fs}": f.fsImage, "{empty}": f.empty,
		"{loop}": f.loop, "{looplink}": f.loopLink, "{backing}": f.backing, "{small}": f.small,
	}
	for k, v := range repl {
		if strings.Contains(s, k) {
			if v == "" {
				return "", false
			}
			s = strings.ReplaceAll(s, k, v)
		}
	}
	return s, true
}

func TestHostileInputs(t *testing.T) {
	f := newHostileFixture(t)
	cases := hostileCases()
	if len(cases) < 60 {
		t.Fatalf("%d hostile cases, want at least 60", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var args, want []string
			for _, a := range c.args {
				x, ok := f.expand(a)
				if !ok {
					t.Skipf("needs %q, which this machine cannot provide (root, loop devices, tmpfs)", a)
				}
				args = append(args, x)
			}
			for _, w := range c.want {
				x, ok := f.expand(w)
				if !ok {
					t.Skip("placeholder unavailable")
				}
				want = append(want, x)
			}
			var extra *os.File
			if c.extraFile != "" {
				p, _ := f.expand(c.extraFile)
				var err error
				if extra, err = os.Open(p); err != nil {
					t.Fatal(err)
				}
				defer extra.Close()
			}
			var streams [2]*os.File
			for i, to := range []string{c.stdoutTo, c.stderrTo} {
				if to == "" {
					continue
				}
				p, ok := f.expand(to)
				if !ok {
					t.Skip("placeholder unavailable")
				}
				var err error
				if streams[i], err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0); err != nil {
					t.Fatal(err)
				}
				defer streams[i].Close()
			}
			r := runHostile(t, extra, streams, args...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d\nstderr: %s", r.code, c.code, r.stderr)
			}
			for _, w := range want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
			for _, bad := range []string{"goroutine ", "panic:", "SIGSEGV"} {
				if strings.Contains(r.stderr, bad) {
					t.Errorf("crash text %q on stderr:\n%s", bad, r.stderr)
				}
			}
			// A report that went to --output is not on stdout; a refused or unusable
			// --output (exit 2) sends the document to stdout instead.
			if jsonWanted(args) && c.stdoutTo == "" && (!hasFlag(args, "--output") || r.code == 2) {
				var d map[string]any
				dec := json.NewDecoder(strings.NewReader(r.stdout))
				if err := dec.Decode(&d); err != nil || dec.More() {
					t.Fatalf("stdout is not one JSON document (%v):\n%s", err, r.stdout)
				}
				status, _ := d["status"].(string)
				if c.status != "" && !strings.HasPrefix(status, c.status) {
					t.Errorf("JSON status %q, want %q", status, c.status)
				}
				if (status == "ok") != (c.code == 0 && c.status == "ok") && c.status != "" {
					t.Errorf("JSON status %q with exit %d", status, r.code)
				}
				if _, hasErr := d["error"]; hasErr == (status == "ok" || status == "interrupted") {
					t.Errorf("status %q with error key %v", status, d["error"])
				}
			} else if c.status != "" {
				t.Fatal("test bug: a status is expected but JSON was not asked for")
			}
			if c.check != nil {
				c.check(t, f, r)
			}
			// Cases that name user data are checked at once; every case is covered by
			// the check after the table.
			if strings.Contains(strings.Join(c.args, " "), "{") {
				f.verifyUnchanged(t)
			}
		})
	}
	f.verifyUnchanged(t)
	// Nothing the cases could have created is left behind.
	for _, name := range []string{"never.json", "never2.txt", "new.img", "first.img", "report.json", "nothere.img", "x.img"} {
		if _, err := os.Lstat(filepath.Join(f.dir, name)); err == nil {
			t.Errorf("%s left behind", name)
		}
	}
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func jsonWanted(args []string) bool {
	if len(args) > 0 && (args[0] == "verify-image" || args[0] == "list") {
		return false
	}
	return scanOutputFormat(args) == "json"
}

// runHostile runs the binary, with extra (if any) as fd 3.
func runHostile(t *testing.T, extra *os.File, streams [2]*os.File, args ...string) e2eRun {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if streams[0] != nil {
		cmd.Stdout = streams[0]
	}
	if streams[1] != nil {
		cmd.Stderr = streams[1]
	}
	if extra != nil {
		cmd.ExtraFiles = []*os.File{extra}
	}
	err := cmd.Run()
	r := e2eRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running nvmeperf: %v", err)
	}
	return r
}

// TestSignalAtEveryPhase sends SIGINT and SIGTERM at the start of target opening and at
// the start of the run (in-process, through the phase hook, so the signal arrives at
// exactly that point): each still gives a JSON document with status interrupted and
// exit 130.
func TestSignalAtEveryPhase(t *testing.T) {
	for _, phase := range []string{"open", "run"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
			t.Run(fmt.Sprintf("%s at %s", sig, phase), func(t *testing.T) {
				var out, errb lockedBuffer
				a := newApp([]string{"nvmeperf", "-q", "4", "-o", "4k", "-w", "randread", "-t", "60", "-r", sim16, "--output-format", "json"}, &out, &errb)
				var ctxSeen bool
				a.phaseHook = func(p string) {
					if p != phase {
						return
					}
					must(t, syscall.Kill(os.Getpid(), sig))
					// Wait until the handler took it (generous: a loaded machine).
					deadline := time.Now().Add(30 * time.Second)
					for !strings.Contains(errb.String(), "interrupted") && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					ctxSeen = strings.Contains(errb.String(), "interrupted")
				}
				code := a.run()
				if !ctxSeen {
					t.Fatalf("the signal was not taken within 30 s: %s", errb.String())
				}
				if code != exitSignal2 {
					t.Errorf("exit %d, want %d: %s", code, exitSignal2, errb.String())
				}
				var d map[string]any
				if err := json.Unmarshal(out.Bytes(), &d); err != nil {
					t.Fatalf("no JSON document: %v\n%s", err, out.String())
				}
				if d["status"] != "interrupted" || d["interrupted"] != true {
					t.Errorf("status %v interrupted %v", d["status"], d["interrupted"])
				}
			})
		}
	}
}

// lockedBuffer is a bytes.Buffer the signal goroutine and the test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Bytes() []byte { return []byte(l.String()) }

// TestAllowDestructiveOverrides: the refusal of a write target is lifted by
// --allow-destructive, and only by it (the --output refusals have no override).
func TestAllowDestructiveOverrides(t *testing.T) {
	img := filepath.Join(t.TempDir(), "old-fs.img")
	b := make([]byte, 1<<20)
	copy(b, "XFSB")
	mustWrite(t, img, b)
	args := []string{"-q", "4", "-o", "4k", "-w", "randwrite", "-d", "16", "-t", "30", img}
	r := runBinary(t, args...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "XFS") {
		t.Fatalf("without the override: exit %d: %s", r.code, r.stderr)
	}
	r = runBinary(t, append(args, "--allow-destructive")...)
	if r.code != 0 {
		if strings.Contains(r.stderr, "io_uring") && (strings.Contains(r.stderr, "not supported") || strings.Contains(r.stderr, "disabled")) {
			t.Skipf("io_uring unavailable here: %s", r.stderr)
		}
		t.Fatalf("with --allow-destructive: exit %d: %s", r.code, r.stderr)
	}
	r = runBinary(t, append(args, "--allow-destructive", "--output", img)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--output "+img) {
		t.Errorf("--allow-destructive must not lift the --output refusal: exit %d: %s", r.code, r.stderr)
	}
}

// TestSignalWhileCreatingRemovesTheFile: a file --size created for a run that a signal
// stopped before any I/O is removed again; the report still says interrupted.
func TestSignalWhileCreatingRemovesTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "created.img")
	var out, errb lockedBuffer
	a := newApp([]string{"nvmeperf", "-q", "4", "-o", "4k", "-w", "randwrite", "-t", "60", "--size", "1m", file, "--output-format", "json"}, &out, &errb)
	a.phaseHook = func(p string) {
		if p != "open" {
			return
		}
		must(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(errb.String(), "interrupted") && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	code := a.run()
	if strings.Contains(errb.String(), "io_uring") && code == exitFailed {
		t.Skipf("io_uring unavailable: %s", errb.String())
	}
	if code != exitSignal2 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := os.Lstat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind after an interrupted open (err %v)", file, err)
	}
	var d map[string]any
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || d["status"] != "interrupted" {
		t.Errorf("document %v (%v)", d["status"], err)
	}
}
