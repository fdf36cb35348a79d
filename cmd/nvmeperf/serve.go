package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/driver"
	"github.com/nvmeperf/nvmeperf/driver/blockdev"
	simdev "github.com/nvmeperf/nvmeperf/driver/sim"
	"github.com/nvmeperf/nvmeperf/driver/spec"
	"github.com/nvmeperf/nvmeperf/driver/target"
	"github.com/nvmeperf/nvmeperf/driver/trid"
	"github.com/nvmeperf/nvmeperf/driver/uring"
	"github.com/nvmeperf/nvmeperf/serve"
)

type serveOpts struct {
	listen, nqn       string
	trids             []string
	inCapsule, maxH2C string
	maxTransfer       string
	fileSize          string
	queueSize         int
	maxIOQueues       int
	allowDestructive  bool
}

func (a *app) serveCommand() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve [-r TRID]... [DEVICE|FILE]...",
		Short: "Serve namespaces over NVMe/TCP: a target for any NVMe/TCP host, with a discovery controller",
		Long: `serve is an NVMe/TCP target. Its namespaces are those of the -r transport IDs (a
simulated controller with any model and fault keys, or a userspace PCIe controller),
then the kernel block devices and files given as arguments (through io_uring), in that
order as NSIDs 1, 2, ... With none, it serves the default simulated controller.

The NVM subsystem is --nqn; the discovery subsystem (` + spec.DiscoveryNQN + `)
lists it. Hosts negotiate header and data digests themselves. serve runs until
interrupted (Ctrl-C or SIGTERM).

Block devices and files are written by hosts: serve refuses anything mounted,
partitioned or holding a file system unless --allow-destructive is given.`,
		Example: `  nvmeperf serve -r 'trtype:sim model:nand nssize:4g'
  nvmeperf serve --listen 0.0.0.0:4420 --nqn nqn.2026-11.io.example:disk /dev/nvme1n1
  # then, from a Linux host:
  nvme connect -t tcp -a 127.0.0.1 -s 4420 -n ` + serve.DefaultNQN,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runServe(o, args)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&o.listen, "listen", serve.DefaultListen, "ADDR:PORT to listen on (4420 is the NVMe-oF port)")
	f.StringVar(&o.nqn, "nqn", serve.DefaultNQN, "NQN of the served NVM subsystem")
	f.StringArrayVarP(&o.trids, "transport", "r", nil, "transport ID whose namespaces to serve, repeatable: 'trtype:sim ...', 'trtype:PCIe traddr:...'")
	f.StringVar(&o.inCapsule, "in-capsule-data", "8k", "largest write carried inside an I/O command capsule (IOCCSZ); larger ones use R2T; 0 = always R2T")
	f.StringVar(&o.maxH2C, "max-h2c-data", "128k", "largest H2CData PDU hosts may send (MAXH2CDATA)")
	f.StringVar(&o.maxTransfer, "max-transfer", "128k", "largest I/O (MDTS), a power of two of 4k pages; lowered to what the namespaces allow")
	f.IntVar(&o.queueSize, "queue-size", serve.DefaultQueueSize, "most entries per I/O queue (CAP.MQES+1), 2 to 1024")
	f.IntVar(&o.maxIOQueues, "max-io-queues", serve.DefaultMaxIOQueues, "most I/O queues per controller")
	f.StringVar(&o.fileSize, "size", "", "size to create or extend a regular file namespace to (e.g. 1g)")
	f.BoolVar(&o.allowDestructive, "allow-destructive", false, "serve block devices holding a filesystem, partition table or mount")
	return cmd
}

// serveConfig checks the flags and builds the server configuration (without namespaces).
func (o *serveOpts) serveConfig() (serve.Config, error) {
	cfg := serve.Config{NQN: o.nqn, QueueSize: o.queueSize, MaxIOQueues: o.maxIOQueues}
	if err := serve.CheckNQN(o.nqn); err != nil {
		return cfg, usagef("--nqn %q: %v", o.nqn, err)
	}
	if o.nqn == spec.DiscoveryNQN {
		return cfg, usagef("--nqn %q is the discovery subsystem's NQN; name the NVM subsystem something else", o.nqn)
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return cfg, usagef("--listen %q: %v (want ADDR:PORT such as 127.0.0.1:4420 or [::1]:4420)", o.listen, err)
	}
	v, err := parseSize("--in-capsule-data", o.inCapsule)
	if o.inCapsule == "0" {
		v, err = 0, nil
	}
	if err != nil {
		return cfg, err
	}
	if v%16 != 0 || v > 1<<20 {
		return cfg, usagef("--in-capsule-data %q: want a multiple of 16 bytes up to 1m", o.inCapsule)
	}
	cfg.InCapsuleData = int(v)
	if v == 0 {
		cfg.InCapsuleData = 16 // the server treats 0 as "default"; 16 bytes keeps writes on R2T
	}
	if v, err = parseSize("--max-h2c-data", o.maxH2C); err != nil {
		return cfg, err
	}
	if v < 4096 || v%4 != 0 || v > 1<<30 {
		return cfg, usagef("--max-h2c-data %q: want a multiple of 4 from 4k to 1g", o.maxH2C)
	}
	cfg.MaxH2CData = uint32(v)
	if v, err = parseSize("--max-transfer", o.maxTransfer); err != nil {
		return cfg, err
	}
	if v < 4096 || v > 1<<30 || v&(v-1) != 0 {
		return cfg, usagef("--max-transfer %q: want a power of two from 4k to 1g", o.maxTransfer)
	}
	cfg.MaxTransfer = int(v)
	if o.queueSize < 2 || o.queueSize > 1024 {
		return cfg, usagef("--queue-size %d: want 2 to 1024", o.queueSize)
	}
	if o.maxIOQueues < 1 || o.maxIOQueues > 0xFFFE {
		return cfg, usagef("--max-io-queues %d: want 1 to 65534", o.maxIOQueues)
	}
	return cfg, nil
}

func (a *app) runServe(o serveOpts, paths []string) error {
	cfg, err := o.serveConfig()
	if err != nil {
		return err
	}
	var fileSize int64
	if o.fileSize != "" {
		if fileSize, err = parseSize("--size", o.fileSize); err != nil {
			return err
		}
	}
	var ids []trid.ID
	for _, s := range o.trids {
		id, err := trid.Parse(s)
		if err != nil {
			return usagef("-r %q: %v", s, err)
		}
		if id.Type == trid.Sim {
			if _, err := simdev.ParseOptions(id.Options); err != nil {
				return usagef("-r %q: %v", s, err)
			}
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 && len(paths) == 0 {
		id, _ := trid.Parse("trtype:sim")
		ids = append(ids, id)
		fmt.Fprintln(a.stderr, "nvmeperf serve: no -r or device given; serving the default simulated controller ('trtype:sim')")
	}
	var targets []target.Target
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	for _, id := range ids {
		ts, _, err := driver.OpenTRID(id.String(), driver.Options{})
		if err != nil {
			return err
		}
		targets = append(targets, ts...)
	}
	// Hosts write to what is served: the same write guard as a write workload.
	guard := &blockdev.Guard{}
	for _, p := range paths {
		obj, err := blockdev.Resolve(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if fileSize == 0 {
				return usagef("%s does not exist; give --size (e.g. --size 1g) to create it as a file", p)
			}
		case err != nil:
			return fmt.Errorf("%s: %w", p, err)
		case obj.Mode != blockdev.ModeFile && fileSize != 0:
			return usagef("--size %s: applies to regular files; %s is not one (a device's size is its capacity)", o.fileSize, p)
		}
		if err := guard.AddTarget(p); err != nil {
			return err
		}
	}
	if !o.allowDestructive {
		for _, p := range paths {
			if err := guard.CheckTargetWrite(p); err != nil {
				if errors.Is(err, blockdev.ErrRefused) {
					return usagef("serve: %v", err)
				}
				return err
			}
		}
	}
	for _, p := range paths {
		t, err := uring.Open(p, uring.Options{Writes: true, AllowDestructive: o.allowDestructive, Size: fileSize, BusyPoll: true})
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		targets = append(targets, t)
	}
	cfg.Namespaces = targets
	srv, err := serve.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	fmt.Fprintf(a.stderr, "nvmeperf serve: NVMe/TCP target %s on %s (discovery: %s)\n", srv.Config().NQN, ln.Addr(), spec.DiscoveryNQN)
	for i, t := range targets {
		info := t.Info()
		fmt.Fprintf(a.stderr, "  NSID %d: %s, %d-byte blocks, %s\n", i+1, info.Name, info.LBASize, humanBytes(info.Capacity))
	}
	fmt.Fprintf(a.stderr, "  MDTS %s, in-capsule data %d bytes, MAXH2CDATA %d, I/O queues up to %d × %d entries\n",
		humanBytes(uint64(srv.MaxTransfer())), srv.Config().InCapsuleData, srv.Config().MaxH2CData,
		srv.Config().MaxIOQueues, srv.Config().QueueSize)
	fmt.Fprintf(a.stderr, "  connect: nvme connect -t tcp -a %s -s %s -n %s\n", host, port, srv.Config().NQN)
	fmt.Fprintf(a.stderr, "  nvmeperf serve stops on Ctrl-C\n")

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case sig := <-sigs:
		fmt.Fprintf(a.stderr, "nvmeperf serve: %s: stopping\n", sig)
		err = errors.Join(srv.Close(), <-done)
	case err = <-done:
		err = errors.Join(err, srv.Close())
	}
	st := srv.Stats()
	fmt.Fprintf(a.stderr, "nvmeperf serve: %d connections, %d controllers, %d I/O commands, %d connections ended by protocol errors\n",
		st.Connections, st.Controllers, st.Commands, st.ProtocolFails)
	return err
}
