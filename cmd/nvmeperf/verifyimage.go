package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/nvmeperf/nvmeperf/verify"
)

func (a *app) verifyImageCommand() *cobra.Command {
	var seed uint64
	var lbaSize, maxReport int
	var requireWritten bool
	cmd := &cobra.Command{
		Use:   "verify-image [flags] IMAGE|DEVICE",
		Short: "Check a raw image or device against the verify-mode block format",
		Long: `verify-image reads IMAGE (a raw disk image or a device, block i being LBA i) and checks
every block written by --verify with the same --seed: all-zero blocks count as unwritten,
blocks with the right header and pattern as verified, anything else as mismatched. The
format is documented in docs/verify-format.md. Exit status 0 when no block mismatches
and at least one block verified (an image with no pattern at all proves nothing;
--require-written=false accepts it), 1 otherwise.`,
		Args: argsUsage(1, "the image or device to check"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := verify.ValidateLBASize(lbaSize); err != nil {
				return usagef("--lba-size %d: %v", lbaSize, err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("verify-image: %w", err)
			}
			defer f.Close()
			size, err := f.Seek(0, 2)
			if err != nil {
				return fmt.Errorf("%s: finding its size: %w", args[0], err)
			}
			size -= size % int64(lbaSize)
			rep, err := verify.CheckImage(f, size, lbaSize, seed, maxReport)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "%s: %d blocks of %d B: %d verified, %d unwritten, %d mismatched\n",
				args[0], rep.Blocks, lbaSize, rep.Verified, rep.Unwritten, rep.Mismatched)
			for _, m := range rep.First {
				fmt.Fprintf(a.stdout, "  %s\n", m)
			}
			switch {
			case rep.Mismatched > 0:
				a.status = exitFailed
				fmt.Fprintf(a.stderr, "nvmeperf: verify-image %s: %d blocks mismatched\n", args[0], rep.Mismatched)
			case requireWritten && rep.Verified == 0:
				a.status = exitFailed
				fmt.Fprintf(a.stderr, "nvmeperf: verify-image %s: no block carries the verify pattern of --seed %d and --lba-size %d: nothing was verified (--require-written=false accepts that)\n", args[0], seed, lbaSize)
			}
			return nil
		},
	}
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed the data was written with (nvmeperf --seed)")
	cmd.Flags().IntVar(&lbaSize, "lba-size", 4096, "logical block size of the image in bytes")
	cmd.Flags().IntVar(&maxReport, "max-report", 10, "list at most this many mismatched blocks")
	cmd.Flags().BoolVar(&requireWritten, "require-written", true, "fail when no block carries the pattern (the default: such an image verifies nothing)")
	return cmd
}
