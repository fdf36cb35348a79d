// Package bustest checks, in tests, what the compiler made of register accesses: it
// builds the calling package's test binary with symbols and disassembles functions of
// it with `go tool objdump`.
package bustest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// LockedRMW matches instructions that read-modify-write memory: on amd64 any
// LOCK-prefixed instruction and XCHG (implicitly locked); on arm64 the exclusive and LSE
// atomics; and calls into sync/atomic's stores, which are the same one level down (the
// race detector build calls them instead of inlining XCHG).
var LockedRMW = regexp.MustCompile(`(?i)\bLOCK\b|XCHG|LDAXR|STLXR|\bLDXR|\bSTXR|\bSWP|\bLDADD|\bCAS[ALB]*\b|atomic\.(Store|Swap|Add|CompareAndSwap|Or|And)|atomic\.\(\*U?[Ii]nt(32|64)\)\.(Store|Swap|Add|CompareAndSwap)`)

// GoTool finds the go command.
func GoTool(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command in PATH or GOROOT (%s): the disassembly check needs `go tool objdump`", p)
	}
	return p
}

// Disassemble builds the test binary of the package in the current directory (go test
// runs tests there), without the race detector and with symbols, and returns the
// instructions of every function whose name matches re, keyed by full name (without
// an assembly function's ".abi0").
func Disassemble(t testing.TB, re string) map[string][]string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pkg.test")
	build := exec.Command(GoTool(t), "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary for disassembly: %v\n%s", err, out)
	}
	out, err := exec.Command(GoTool(t), "tool", "objdump", "-s", re, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump -s %q: %v\n%s", re, err, out)
	}
	funcs := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "TEXT ") {
			// Assembly functions carry their ABI in the symbol name: drop it.
			cur = strings.TrimSuffix(strings.TrimSuffix(strings.Fields(line)[1], "(SB)"), ".abi0")
			funcs[cur] = nil
			continue
		}
		// file:line  address  encoding  instruction...
		f := strings.Fields(line)
		if cur == "" || len(f) < 4 {
			continue
		}
		funcs[cur] = append(funcs[cur], strings.Join(f[3:], " "))
	}
	return funcs
}

// ContainsMatch reports whether any instruction matches re.
func ContainsMatch(ins []string, re string) bool {
	r := regexp.MustCompile(re)
	for _, in := range ins {
		if r.MatchString(in) {
			return true
		}
	}
	return false
}
