package main

import (
	"bytes"
	"strings"
	"testing"
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
