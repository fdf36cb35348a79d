package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/nvmetcp"
	"github.com/nvmeperf/nvmeperf/driver/spec"
)

func TestServeFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nqn", "iqn.bad"}, "--nqn"},
		{[]string{"--nqn", "nqn.2014-08.org.nvmexpress.discovery"}, "discovery"},
		{[]string{"--listen", "4420"}, "--listen"},
		{[]string{"--in-capsule-data", "100"}, "--in-capsule-data"},
		{[]string{"--max-h2c-data", "1k"}, "--max-h2c-data"},
		{[]string{"--max-transfer", "12k"}, "--max-transfer"},
		{[]string{"--queue-size", "1"}, "--queue-size"},
		{[]string{"--max-io-queues", "0"}, "--max-io-queues"},
		{[]string{"-r", "trtype:sim bogus-key:1"}, "-r"},
		{[]string{"--size", "lots", "x.img"}, "--size"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"nvmeperf", "serve"}, tc.args...), &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("serve %v: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("serve %v: %q does not name %s", tc.args, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("serve %v wrote to stdout: %q", tc.args, stdout.String())
		}
	}
}

func TestServeConfigDefaults(t *testing.T) {
	o := serveOpts{listen: "127.0.0.1:4420", nqn: "nqn.2026-11.io.nvmeperf:sim", inCapsule: "8k", maxH2C: "128k",
		maxTransfer: "128k", queueSize: 128, maxIOQueues: 64}
	cfg, err := o.serveConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InCapsuleData != 8192 || cfg.MaxH2CData != 128<<10 || cfg.MaxTransfer != 128<<10 {
		t.Fatalf("config %+v", cfg)
	}
}

// TestServeBinary runs `nvmeperf serve` on a free loopback port, connects an admin
// queue over NVMe/TCP, reads CAP, and stops the target with SIGINT: exit 0 and a summary
// counting the connection.
func TestServeBinary(t *testing.T) {
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:0", "-r", "trtype:sim nssize:16m")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrRE := regexp.MustCompile(` on (\S+) \(discovery`)
	var addr string
	var log []string
	deadline := time.After(60 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited: %q", log)
			}
			log = append(log, l)
			if m := addrRE.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-deadline:
			t.Fatalf("serve printed no address: %q", log)
		}
	}
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	r, w := nvmetcp.NewReader(nc, 4096, 1<<20), nvmetcp.NewWriter(nc, 4096)
	w.ICReq(0, nvmetcp.Digests{}, 0)
	var cd spec.ConnectData
	cd.CNTLID = spec.ControllerIDDynamic
	cd.SetNQNs("nqn.2026-11.io.nvmeperf:sim", "nqn.2014-08.org.nvmexpress:uuid:e2e")
	data := make([]byte, spec.ConnectDataSize)
	cd.Marshal(data)
	cc := spec.ConnectCommand{Opcode: spec.OpcodeFabrics, FCType: uint8(spec.FabricsConnect), SQSIZE: 31}
	sqe := cc.ToCommand()
	nvmetcp.SetCommandData(&sqe, spec.ConnectDataSize, true)
	w.CapsuleCmd(&sqe, data)
	pg := spec.PropertyGetCommand{CID: 1, ATTRIB: spec.PropertySize8, OFST: spec.RegCAP}
	sqe = pg.ToCommand()
	w.CapsuleCmd(&sqe, nil)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []nvmetcp.PDUType{nvmetcp.TypeICResp, nvmetcp.TypeCapsuleResp, nvmetcp.TypeCapsuleResp} {
		h, err := r.Next()
		if err != nil || h.CH.Type != want {
			t.Fatalf("want %s: %v", want, err)
		}
		if want == nvmetcp.TypeCapsuleResp && !h.CapsuleResp.CQE.StatusField().OK() {
			t.Fatalf("CID %d: %s", h.CapsuleResp.CQE.CID, h.CapsuleResp.CQE.StatusField())
		}
		if want == nvmetcp.TypeCapsuleResp && h.CapsuleResp.CQE.CID == 1 {
			if c := spec.CAP(uint64(h.CapsuleResp.CQE.DW0) | uint64(h.CapsuleResp.CQE.DW1)<<32); c.MQES() != 127 {
				t.Errorf("CAP %s", c)
			}
		}
	}
	nc.Close()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		log = append(log, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGINT: %v\n%s", err, strings.Join(log, "\n"))
	}
	if all := strings.Join(log, "\n"); !strings.Contains(all, "1 connections, 1 controllers") {
		t.Errorf("summary does not count the connection:\n%s", all)
	}
}

// TestServeRefusesFilesHoldingData: hosts write to what is served, so a file holding a
// file system image is refused (exit 2, naming the path) unless --allow-destructive.
func TestServeRefusesFilesHoldingData(t *testing.T) {
	img := filepath.Join(t.TempDir(), "fs.img")
	b := make([]byte, 1<<20)
	// An ext4 superblock magic at 1024+56.
	b[1024+56], b[1024+57] = 0x53, 0xEF
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"nvmeperf", "serve", "--listen", "127.0.0.1:0", img}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), img) || !strings.Contains(stderr.String(), "--allow-destructive") {
		t.Fatalf("serve on a file system image: exit %d, %q", code, stderr.String())
	}
	code = run([]string{"nvmeperf", "serve", "--listen", "127.0.0.1:0", filepath.Join(t.TempDir(), "missing.img")}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("serve on a missing file without --size: exit %d", code)
	}
}
