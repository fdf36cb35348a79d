package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func recoveryFixture() *Recovery {
	h := DeviceHealth{
		Device: "trtype:sim traddr:0000:00:00.0",
		Before: &HealthSnapshot{Time: "2026-01-02T03:04:05.000000000Z", TemperatureK: 310, AvailableSpare: 100,
			DataUnitsRead: 1000, DataUnitsWritten: 500, HostReadCommands: 8000, HostWriteCommands: 4000, PowerOnHours: 7},
		After: &HealthSnapshot{Time: "2026-01-02T03:04:07.000000000Z", CriticalWarning: 0x02, TemperatureK: 312,
			AvailableSpare: 100, DataUnitsRead: 1400, DataUnitsWritten: 700, HostReadCommands: 11200,
			HostWriteCommands: 5600, MediaErrors: 3, ErrorLogEntries: 3, PowerOnHours: 7},
	}
	h.Diff()
	return &Recovery{
		Events: []Event{
			{Time: "2026-01-02T03:04:06.000000000Z", Device: "trtype:sim traddr:0000:00:00.0", Kind: EventTimeout, Details: "Read outstanding longer than 1s"},
			{Time: "2026-01-02T03:04:06.100000000Z", Device: "trtype:sim traddr:0000:00:00.0", Kind: EventAbort, Details: "aborted"},
			{Time: "2026-01-02T03:04:06.500000000Z", Device: "trtype:sim traddr:0000:00:00.0", Kind: EventReset, Details: "controller ready again after 1.2ms"},
		},
		Counts: []RecoveryCounts{{Device: "trtype:sim traddr:0000:00:00.0", Timeouts: 1, Aborts: 1, Resets: 1, Retries: 4, AsyncEvents: 1}},
		Health: []DeviceHealth{h},
	}
}

// The recovery keys: a golden document, every key documented, the difference right.
func TestJSONRecoveryGolden(t *testing.T) {
	meta := fixtureMeta(randrwConfig())
	meta.Recovery = recoveryFixture()
	var b bytes.Buffer
	if err := WriteJSON(&b, Build(meta, randrwResult(t), "io_errors")); err != nil {
		t.Fatal(err)
	}
	golden(t, "recovery.json.golden", b.Bytes())

	d := meta.Recovery.Health[0].Difference
	if d.DataUnitsRead != 400 || d.HostWriteCommands != 1600 || d.MediaErrors != 3 || d.TemperatureK != 2 || d.NewCriticalWarnings != 0x02 {
		t.Errorf("difference %+v", *d)
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "json-schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := decodeMap(t, Build(meta, randrwResult(t), "io_errors"))
	for _, top := range []string{"events", "recovery", "health"} {
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, child := range x {
					if !strings.Contains(string(doc), "`"+k+"`") {
						t.Errorf("key %q (under %q) is not documented in docs/json-schema.md", k, top)
					}
					walk(child)
				}
			case []any:
				for _, child := range x {
					walk(child)
				}
			}
		}
		if !strings.Contains(string(doc), "`"+top+"`") {
			t.Errorf("key %q is not documented", top)
		}
		walk(m[top])
	}
}

func TestTextRecoverySummary(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, randrwResult(t), TextOptions{Recovery: recoveryFixture()}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Recovery on trtype:sim traddr:0000:00:00.0: 1 timeouts, 1 aborts, 1 resets, 4 retries, 1 async events",
		"400 data units read, 200 written, 3 media errors", "temperature +2 K", "NEW CRITICAL WARNINGS 0x02"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}
