package main

// CLI manners: argument rewriting for spdk_nvme_perf spellings, "did you mean" for
// mistyped subcommands, shell completion of flag values, a man page from the command
// tree, and --version with the module version and commit.

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	cobradoc "github.com/spf13/cobra/doc"
)

// cliArgs rewrites the command line before cobra parses it: spdk_nvme_perf spellings
// (normalizeArgs), -v/--help-full as --help, and a first word that is neither a
// subcommand nor an existing file but close to a subcommand's name, which is refused
// as an unknown command instead of being taken as a file to benchmark.
func (a *app) cliArgs(root *cobra.Command, args []string) ([]string, error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if sub, _, err := root.Find(args); err == nil && sub != root {
			return args, nil // a subcommand parses its own flags
		}
		switch args[0] {
		case "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd, "completion":
			return args, nil
		}
		if !fileExists(args[0]) && !strings.ContainsAny(args[0], "/.") {
			if s := root.SuggestionsFor(args[0]); len(s) > 0 || !hasFlags(args) {
				msg := fmt.Sprintf("unknown command %q for \"nvmeperf\"", args[0])
				if len(s) > 0 {
					msg += "; did you mean " + strings.Join(s, " or ") + "?"
				} else {
					msg += fmt.Sprintf(" (commands: %s; devices and files to benchmark must exist, %q does not)", subcommandNames(root), args[0])
				}
				return nil, usagef("%s", msg)
			}
		}
	}
	for _, arg := range args {
		if arg == "--" {
			break
		}
		if arg == "-v" || arg == "--help-full" {
			return []string{"--help"}, nil
		}
	}
	return normalizeArgs(root.Flags(), args)
}

func hasFlags(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return true
		}
	}
	return false
}

func subcommandNames(root *cobra.Command) string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// commit is set at build time (-ldflags -X main.commit=...) for builds without VCS
// stamping (-buildvcs=false).
var commit = ""

// versionString is the build's version: -ldflags main.version, the module version,
// the VCS commit and the Go version (runtime/debug.ReadBuildInfo).
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	mod := bi.Main.Version
	if mod == "" {
		mod = "(devel)"
	}
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if rev == "" {
		rev = commit
	}
	if rev == "" {
		rev = "unknown"
	} else if len(rev) > 12 {
		rev = rev[:12]
	}
	if when != "" {
		when = " " + when
	}
	return fmt.Sprintf("%s (module %s %s, commit %s%s%s, %s)", v, bi.Main.Path, mod, rev, when, dirty, bi.GoVersion)
}

// addCLIManners adds value completion and the hidden man-page generator.
func (a *app) addCLIManners(root *cobra.Command) {
	root.SetVersionTemplate("nvmeperf {{.Version}}\n")
	root.SuggestionsMinimumDistance = 2
	fixed := func(vals ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return vals, cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = root.RegisterFlagCompletionFunc("io-pattern", fixed("read", "write", "randread", "randwrite", "rw", "randrw"))
	_ = root.RegisterFlagCompletionFunc("output-format", fixed("text", "json", "fio-json", "text,json", "text,fio-json"))
	_ = root.RegisterFlagCompletionFunc("doorbell", fixed("per-poll", "per-command", "8"))
	_ = root.RegisterFlagCompletionFunc("rwmixread", fixed("0", "30", "50", "70", "100"))
	_ = root.RegisterFlagCompletionFunc("transport", a.completeTRID)
	_ = root.RegisterFlagCompletionFunc("allowed-pci-addr", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return a.pciAddresses(), cobra.ShellCompDirectiveNoFileComp
	})
	for _, c := range root.Commands() {
		if c.Name() == "list" {
			_ = c.RegisterFlagCompletionFunc("output-format", fixed("text", "json"))
		}
	}
	man := &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of nvmeperf and its subcommands to DIR (make man)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			hdr := &cobradoc.GenManHeader{Title: "NVMEPERF", Section: "1", Source: "nvmeperf " + version, Manual: "nvmeperf manual"}
			root.DisableAutoGenTag = true
			return cobradoc.GenManTree(root, hdr, args[0])
		},
	}
	root.AddCommand(man)
}

// completeTRID completes -r values: whole transport IDs for the simulated controller
// and every local PCIe controller `list` shows, then the keys a partial one lacks.
func (a *app) completeTRID(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var out []string
	if !strings.Contains(toComplete, " ") {
		out = append(out, "trtype:sim", "trtype:sim model:nand", "trtype:sim nssize:1g")
		for _, addr := range a.pciAddresses() {
			out = append(out, "trtype:PCIe traddr:"+addr)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
	keys := []string{"traddr:", "ns:"}
	if strings.Contains(strings.ToLower(toComplete), "trtype:sim") {
		keys = []string{"model:", "nssize:", "lbasize:", "namespaces:", "ns:"}
	}
	for _, k := range keys {
		if !strings.Contains(toComplete, " "+k) {
			out = append(out, strings.TrimRight(toComplete, " ")+" "+k)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// pciAddresses are the NVMe controllers `nvmeperf list` shows.
func (a *app) pciAddresses() []string {
	ctrls, err := a.probe()
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range ctrls {
		out = append(out, c.Address)
	}
	return out
}
