package cluster

import (
	"fmt"
	"strconv"
	"strings"
)

// Placeholders accepted in per-rank file names.
var Placeholders = []string{"{rank}", "{world_size}", "{host}"}

// ExpandName fills {rank}, {world_size} and {host} in a file name, so that every rank of
// a launcher writes its own file (`--output results-{rank}.json`). A brace that opens
// none of these is an error: a typo must not make every rank write the same file. flag
// names the option for messages. The host name has path separators replaced so it stays
// one path element.
func ExpandName(flag, pattern string, id Identity, host string) (string, error) {
	var b strings.Builder
	rest := pattern
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", fmt.Errorf("%s %q: unclosed %q; placeholders are %s", flag, pattern, rest, strings.Join(Placeholders, ", "))
		}
		switch rest[:j+1] {
		case "{rank}":
			b.WriteString(strconv.Itoa(id.Rank))
		case "{world_size}":
			b.WriteString(strconv.Itoa(id.WorldSize))
		case "{host}":
			if host == "" {
				host = "unknown-host"
			}
			b.WriteString(strings.NewReplacer("/", "_", "\x00", "_").Replace(host))
		default:
			return "", fmt.Errorf("%s %q: unknown placeholder %s; placeholders are %s", flag, pattern, rest[:j+1], strings.Join(Placeholders, ", "))
		}
		rest = rest[j+1:]
	}
}

// PerRank reports whether a name pattern gives each rank its own file.
func PerRank(pattern string) bool {
	return strings.Contains(pattern, "{rank}") || strings.Contains(pattern, "{host}")
}
