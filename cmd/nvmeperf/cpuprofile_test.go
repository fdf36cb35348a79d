package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestE2ECPUProfileAndWorkerCPU(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	r := runBinary(t, "-q", "16", "-o", "4k", "-w", "randread", "-t", "0.5", "-c", "[0]", "-r", sim("nssize:64m"),
		"--output-format", "json", "--cpuprofile", prof)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	// runtime/pprof writes a gzip-compressed profile.proto.
	if len(b) < 20 || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("profile is %d bytes, not a gzip-compressed pprof profile", len(b))
	}
	d := decodeDoc(t, r.stdout)
	if len(d.Workers) != 1 || d.Workers[0].Core != 0 || d.Jobs[0].Worker != 0 {
		t.Fatalf("workers %+v, job worker %d", d.Workers, d.Jobs[0].Worker)
	}
	w, tot := d.Workers[0], d.Total.CPU
	if w.IOs != d.Total.All.IOs+d.Total.All.Errors {
		t.Errorf("worker counts %d I/Os, total %d", w.IOs, d.Total.All.IOs)
	}
	if tot.UserSeconds+tot.SystemSeconds <= 0 || tot.NSPerIO <= 0 || tot != w.CPU {
		t.Errorf("total cpu %+v, worker cpu %+v", tot, w.CPU)
	}
	// A worker's thread cannot use more CPU than the measured wall time (plus the
	// drain and getrusage's tick rounding).
	if used := tot.UserSeconds + tot.SystemSeconds; used > d.DurationSeconds+0.1 {
		t.Errorf("%.3f s of worker CPU in %.3f s measured", used, d.DurationSeconds)
	}
}

func TestE2ECPUProfileNeverATarget(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data.dat")
	content := bytes.Repeat([]byte{0xa5}, 1<<20)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.dat")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, prof := range []string{file, link, dir} {
		r := runBinary(t, "-q", "4", "-o", "4k", "-w", "randread", "-t", "0.2", "--cpuprofile", prof, file)
		if r.code != 2 || !strings.Contains(r.stderr, "--cpuprofile "+prof) {
			t.Errorf("--cpuprofile %s: exit %d, stderr %q; want exit 2 naming the flag", prof, r.code, r.stderr)
		}
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, content) {
		t.Error("the target was modified")
	}
}
