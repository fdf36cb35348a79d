package report

import (
	"fmt"
	"strings"
)

// Recovery reporting (docs/recovery.md): what the driver did to keep devices going,
// and the devices' own health view of the run. All of it is optional in the document:
// absent when nothing was recorded.

// Event kinds in Event.Kind.
const (
	EventTimeout    = "timeout"
	EventAbort      = "abort"
	EventReset      = "reset"
	EventRetry      = "retry"
	EventAsyncEvent = "async_event"
	EventErrorLog   = "error_log"
)

// Event is one thing the driver did or saw on a device (JSON "events").
type Event struct {
	Time    string `json:"time"` // RFC 3339 with nanoseconds, UTC
	Device  string `json:"device"`
	Kind    string `json:"kind"`
	Details string `json:"details"`
}

// RecoveryCounts sums a device's events (JSON "recovery"); the counts include events
// the bounded event list left out.
type RecoveryCounts struct {
	Device        string `json:"device"`
	Timeouts      int    `json:"timeouts"`
	Aborts        int    `json:"aborts"`
	Resets        int    `json:"resets"`
	Retries       uint64 `json:"retries"`
	AsyncEvents   int    `json:"async_events"`
	EventsDropped int    `json:"events_dropped"` // events not listed because the list was full
}

// HealthSnapshot is a device's SMART / Health log at one moment.
type HealthSnapshot struct {
	Time              string `json:"time"`
	CriticalWarning   uint8  `json:"critical_warning"` // bit field, as the log page has it
	TemperatureK      uint16 `json:"temperature_k"`
	AvailableSpare    uint8  `json:"available_spare_percent"`
	PercentageUsed    uint8  `json:"percentage_used"`
	DataUnitsRead     uint64 `json:"data_units_read"` // thousands of 512-byte units
	DataUnitsWritten  uint64 `json:"data_units_written"`
	HostReadCommands  uint64 `json:"host_read_commands"`
	HostWriteCommands uint64 `json:"host_write_commands"`
	MediaErrors       uint64 `json:"media_errors"`
	ErrorLogEntries   uint64 `json:"error_log_entries"`
	PowerOnHours      uint64 `json:"power_on_hours"`
	UnsafeShutdowns   uint64 `json:"unsafe_shutdowns"`
}

// HealthDifference is after minus before. Counters that went backwards (a device that
// reset them) count as 0.
type HealthDifference struct {
	DataUnitsRead     uint64 `json:"data_units_read"`
	DataUnitsWritten  uint64 `json:"data_units_written"`
	HostReadCommands  uint64 `json:"host_read_commands"`
	HostWriteCommands uint64 `json:"host_write_commands"`
	MediaErrors       uint64 `json:"media_errors"`
	ErrorLogEntries   uint64 `json:"error_log_entries"`
	TemperatureK      int    `json:"temperature_k"`
	// NewCriticalWarnings are the critical warning bits set after the run and not before.
	NewCriticalWarnings uint8 `json:"new_critical_warnings"`
}

// DeviceHealth is a device's health before and after the run (JSON "health").
type DeviceHealth struct {
	Device     string            `json:"device"`
	Targets    []string          `json:"targets,omitempty"` // kernel NVMe: the run's targets behind this controller
	Before     *HealthSnapshot   `json:"before,omitempty"`
	After      *HealthSnapshot   `json:"after,omitempty"`
	Difference *HealthDifference `json:"difference,omitempty"` // when both snapshots exist
	Error      string            `json:"error,omitempty"`      // why a snapshot is missing
}

// Diff fills Difference from Before and After when both exist.
func (h *DeviceHealth) Diff() {
	if h.Before == nil || h.After == nil {
		return
	}
	b, a := h.Before, h.After
	sub := func(x, y uint64) uint64 {
		if x < y {
			return 0
		}
		return x - y
	}
	h.Difference = &HealthDifference{
		DataUnitsRead:       sub(a.DataUnitsRead, b.DataUnitsRead),
		DataUnitsWritten:    sub(a.DataUnitsWritten, b.DataUnitsWritten),
		HostReadCommands:    sub(a.HostReadCommands, b.HostReadCommands),
		HostWriteCommands:   sub(a.HostWriteCommands, b.HostWriteCommands),
		MediaErrors:         sub(a.MediaErrors, b.MediaErrors),
		ErrorLogEntries:     sub(a.ErrorLogEntries, b.ErrorLogEntries),
		TemperatureK:        int(a.TemperatureK) - int(b.TemperatureK),
		NewCriticalWarnings: a.CriticalWarning &^ b.CriticalWarning,
	}
}

// Recovery is what Meta carries into the document for events, counts and health.
type Recovery struct {
	Events []Event
	Counts []RecoveryCounts
	Health []DeviceHealth
}

// writeRecoveryText adds the recovery summary and health differences to the text
// report, after the tables.
func writeRecoveryText(b *strings.Builder, r *Recovery) {
	if r == nil {
		return
	}
	for _, c := range r.Counts {
		if c.Timeouts+c.Aborts+c.Resets+c.AsyncEvents == 0 && c.Retries == 0 {
			continue
		}
		fmt.Fprintf(b, "Recovery on %s: %d timeouts, %d aborts, %d resets, %d retries, %d async events\n",
			c.Device, c.Timeouts, c.Aborts, c.Resets, c.Retries, c.AsyncEvents)
	}
	for _, h := range r.Health {
		switch {
		case h.Difference != nil:
			d := h.Difference
			fmt.Fprintf(b, "Health of %s over the run: %d data units read, %d written, %d media errors, %d error log entries, temperature %+d K",
				h.Device, d.DataUnitsRead, d.DataUnitsWritten, d.MediaErrors, d.ErrorLogEntries, d.TemperatureK)
			if d.NewCriticalWarnings != 0 {
				fmt.Fprintf(b, ", NEW CRITICAL WARNINGS %#02x", d.NewCriticalWarnings)
			}
			b.WriteString("\n")
		case h.Error != "":
			fmt.Fprintf(b, "Health of %s: %s\n", h.Device, h.Error)
		}
	}
}
