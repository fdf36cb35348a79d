// Package reporttest builds deterministic run and sweep documents for the tests of the
// packages that read them (compare, report/plot, report, cmd). A point's numbers follow
// a simple device model that every test can check by hand: a device that serves each
// I/O in Service and at most Cap I/Os per second; with n I/Os in flight it does
// min(n/Service, Cap) IOPS and, by Little's law, latency n/IOPS.
package reporttest

import (
	"fmt"
	"math"
	"time"

	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/report"
	"github.com/nvmeperf/nvmeperf/workload"
)

// Start is the start time of every document built here.
var Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Device is the device of every document built here.
var Device = target.Info{
	Name: "sim NSID 1", TRID: "trtype:sim model:nand", Transport: "sim", Model: "nvmeperf simulated controller",
	Serial: "SIM0001", Firmware: "1.0", NSID: 1, LBASize: 512, Capacity: 1 << 30, MaxTransfer: 128 << 10,
}

// Model is the device model of a point.
type Model struct {
	Service time.Duration // latency of one I/O on an idle device
	Cap     float64       // IOPS the device saturates at
	// Slow multiplies every latency (and divides IOPS): 1.2 is a device 20 % slower.
	Slow float64
}

// DefaultModel serves an I/O in 100 µs and saturates at 40 K IOPS (queue depth 4).
var DefaultModel = Model{Service: 100 * time.Microsecond, Cap: 40000, Slow: 1}

// Run is a one-second run of params on m: IOPS and latency from the model, latencies
// spread evenly from 0.5 to 1.5 times the mean, I/Os capped at 20000 so that the
// documents stay small (the duration stretches instead).
func Run(p report.SweepParams, m Model) report.Document {
	slow := m.Slow
	if slow <= 0 {
		slow = 1
	}
	inflight := float64(p.QueueDepth * p.QPairs)
	iops := math.Min(inflight/m.Service.Seconds(), m.Cap) / slow
	mean := inflight / iops * 1e9 // ns
	n := 20000
	dur := time.Duration(float64(n) / iops * float64(time.Second))
	reads, writes := n*p.ReadPercent/100, n-n*p.ReadPercent/100
	side := func(count int, offset float64) workload.Side {
		h := workload.NewLatencyHistogram()
		for i := range count {
			v := mean * (0.5 + offset + float64(i)/float64(max(1, count)))
			_ = h.RecordValue(int64(v))
		}
		return workload.Side{IOs: uint64(count), Bytes: uint64(count * p.IOSize), Latency: h}
	}
	res := workload.Result{Start: Start, Duration: dur, Jobs: []workload.Job{{
		Target: Device, Core: 0, QPairs: p.QPairs, Read: side(reads, 0), Write: side(writes, 0.1),
	}}}
	cores := make([]int, max(1, p.Workers))
	for i := range cores {
		cores[i] = i
	}
	meta := report.Meta{
		Version: "v0.0.0-test", CommandLine: []string{"nvmeperf"},
		Host: report.Host{Hostname: "test", OS: "linux", Arch: "amd64", NumCPU: 2, GoVersion: "go1.26"},
		Config: report.Config{Workload: p.Pattern, ReadPercent: p.ReadPercent, QueueDepth: p.QueueDepth,
			IOSize: p.IOSize, Seconds: dur.Seconds(), Cores: cores, QPairsPerNS: max(1, p.QPairs/max(1, p.Workers)),
			Seed: 1, Doorbell: "per-poll", Targets: []string{Device.TRID}},
	}
	return report.Build(meta, res, report.StatusOK)
}

// Params is a point of one worker.
func Params(q, qpairs, size int, pattern string, readPercent int) report.SweepParams {
	return report.SweepParams{QueueDepth: q, QPairs: qpairs, Workers: 1, IOSize: size, Pattern: pattern, ReadPercent: readPercent}
}

// Sweep measures every depth × qpairs point of a 4 KiB randread sweep on m, and a point
// that failed when failQ > 0 (at depth failQ, qpairs 1).
func Sweep(depths, qpairs []int, m Model, failQ int) *report.SweepDocument {
	d := &report.SweepDocument{
		Schema: report.SweepSchema, Version: "v0.0.0-test", CommandLine: []string{"nvmeperf", "sweep"},
		StartTime: Start.Format(time.RFC3339), Status: report.SweepOK,
		Config: report.SweepConfig{QueueDepths: depths, QPairsPerNS: qpairs, Workers: []int{1}, IOSizes: []int{4096},
			Patterns: []string{"randread"}, ReadPercents: []int{0}, Repeat: 1},
		Points: []report.SweepPoint{},
	}
	for _, n := range qpairs {
		for _, q := range depths {
			p := Params(q, n, 4096, "randread", 100)
			if q == failQ && n == 1 {
				d.Points = append(d.Points, report.SweepPoint{Params: p, Error: "-r trtype:sim: cannot open: simulated failure"})
				d.Status = report.SweepFailedPoints
				continue
			}
			r := Run(p, m)
			d.Points = append(d.Points, report.SweepPoint{Params: p, Result: &r})
		}
	}
	return d
}

// Repeated is n repetitions of a run, repetition i scaled by 1 + jitter×(i-n/2)/n so
// that the samples differ, merged as --repeat merges them.
func Repeated(p report.SweepParams, m Model, n int, jitter float64) (report.Document, error) {
	var docs []report.Document
	for i := range n {
		mm := m
		if mm.Slow <= 0 {
			mm.Slow = 1
		}
		mm.Slow *= 1 + jitter*(float64(i)-float64(n)/2)/float64(n)
		docs = append(docs, Run(p, mm))
	}
	d, err := report.MergeRepetitions(docs)
	if err != nil {
		return report.Document{}, fmt.Errorf("reporttest: %w", err)
	}
	return d, nil
}
