package main

import (
	"strings"
	"testing"

	"github.com/nvmeperf/nvmeperf/driver/target"
)

// TestIOUnitAndMetadataFlags: bad -O and -e values are usage errors naming the flag.
func TestIOUnitAndMetadataFlags(t *testing.T) {
	base := []string{"-q", "8", "-o", "16k", "-w", "randread", "-t", "1"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"-O garbage", []string{"-O", "lots"}, []string{"-O \"lots\""}},
		{"-O unaligned", []string{"-O", "1000"}, []string{"-O 1000", "multiple of the LBA size"}},
		{"-O above -o", []string{"-O", "32k"}, []string{"-O 32k", "at most the I/O size"}},
		{"-O not a multiple of this LBA", []string{"-O", "1536", "-r", "trtype:sim nssize:8m"}, []string{"-O 1536", "4096-byte blocks"}},
		{"-e PRACT=2", []string{"-e", "PRACT=2"}, []string{"-e \"PRACT=2\"", "neither 0 nor 1"}},
		{"-e bad PRCHK", []string{"-e", "PRACT=0,PRCHK=GUARD|CRC"}, []string{"-e", "\"CRC\"", "GUARD, REFTAG or APPTAG"}},
		{"-e unknown key", []string{"-e", "PRINFO=1"}, []string{"-e", "unknown key \"PRINFO\""}},
		{"-e no value", []string{"-e", "PRACT"}, []string{"-e", "KEY=VALUE"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append(append([]string{}, base...), tc.args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errOut)
			}
			if out != "" {
				t.Errorf("usage error wrote to stdout: %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("message %q does not mention %q", errOut, w)
				}
			}
		})
	}
}

func TestParseMetadata(t *testing.T) {
	all := target.PICheckGuard | target.PICheckAppTag | target.PICheckRefTag
	for in, want := range map[string]target.Protection{
		"":                                  {},
		"PRACT=0":                           {},
		"PRACT=1":                           {Action: true},
		"PRACT=0,PRCHK=GUARD|REFTAG|APPTAG": {Check: all},
		"prchk=reftag, pract=1":             {Action: true, Check: target.PICheckRefTag},
	} {
		got, err := parseMetadata(in)
		if err != nil || got != want {
			t.Errorf("-e %q: %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// TestE2ESplitAndMetadataRuns: I/O above MDTS runs (split) with verify, -O splits
// further, metadata namespaces run with verify under -e, and a format nvmeperf cannot
// drive is refused with its name.
func TestE2ESplitAndMetadataRuns(t *testing.T) {
	runs := []struct {
		name string
		args []string
	}{
		{"1 MiB over 128 KiB MDTS", []string{"-o", "1m", "-r", sim("nssize:32m store:mem")}},
		{"128 KiB over 8 KiB MDTS, -O 4k", []string{"-o", "128k", "-O", "4k", "-r", sim("nssize:16m mdts:1 lbasize:512")}},
		{"extended 512+8 PI 1, PRACT=0 all checks", []string{"-o", "16k", "-e", "PRACT=0,PRCHK=GUARD|REFTAG|APPTAG",
			"-r", sim("nssize:8m lbasize:512 ms:8 mset:1 pi:1 mdts:1")}},
		{"separate 4096+16 PI 2 first, PRACT=1", []string{"-o", "64k", "-e", "PRACT=1,PRCHK=GUARD|REFTAG",
			"-r", sim("nssize:16m ms:16 pi:2 pil:1")}},
		{"extended 4096+8, no PI", []string{"-o", "8k", "-r", sim("nssize:8m ms:8 mset:1")}},
	}
	for _, tc := range runs {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-q", "4", "-w", "randrw", "-M", "50", "-d", "300", "-t", "30", "--verify", "--output-format", "json"}, tc.args...)
			r := runBinary(t, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
			}
			d := decodeDoc(t, r.stdout)
			if d.Total.Verify == nil || d.Total.Verify.Checked == 0 || d.Total.Verify.Mismatched != 0 {
				t.Fatalf("verify totals %+v", d.Total.Verify)
			}
		})
	}
	r := runBinary(t, "-q", "1", "-o", "4k", "-w", "read", "-t", "1", "-r", sim("nssize:8m ms:6 mset:1"))
	if r.code == 0 || !strings.Contains(r.stderr, "4096+6 extended LBA, no PI") || !strings.Contains(r.stderr, "not supported") {
		t.Fatalf("unsupported format: exit %d, stderr %q", r.code, r.stderr)
	}
}
