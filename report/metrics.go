package report

import (
	"fmt"
	"math"
)

// Metric names, in the order tables show them. Latency metrics are nanoseconds.
var MetricNames = []string{"iops", "mibps", "mean", "p50", "p99", "p99.9", "p99.99", "errors"}

// metricPercents maps the latency percentile metrics to their percent.
var metricPercents = map[string]float64{"p50": 50, "p99": 99, "p99.9": 99.9, "p99.99": 99.99}

// HigherIsBetter says which way a metric improves.
func HigherIsBetter(metric string) bool { return metric == "iops" || metric == "mibps" }

// Metrics are the numbers a verdict is made of, for one stats block. Percentiles and
// the mean are computed from the block's histogram, never taken from stored keys.
type Metrics map[string]float64

// MetricsOf computes the metrics of a stats block from its counters and histogram.
func MetricsOf(s Stats) (Metrics, error) {
	h, err := s.histogram()
	if err != nil {
		return nil, err
	}
	m := Metrics{"iops": s.IOPS, "mibps": s.MiBps, "errors": float64(s.Errors)}
	m["mean"] = 0
	if h.TotalCount() > 0 {
		m["mean"] = finite(h.Mean())
	}
	for name, p := range metricPercents {
		m[name] = 0
		if h.TotalCount() > 0 {
			m[name] = float64(h.ValueAtPercentile(p))
		}
	}
	return m, nil
}

// Estimate is a metric's median over repetitions with a confidence interval. Low and
// High are absent when there are too few repetitions for the asked confidence (six
// give a 95% interval of the median).
type Estimate struct {
	Median     float64  `json:"median"`
	Low        *float64 `json:"ci_low,omitempty"`
	High       *float64 `json:"ci_high,omitempty"`
	Confidence float64  `json:"confidence"` // the interval's actual confidence level, 0..1
	N          int      `json:"n"`
}

// String shows the estimate as "median [low, high]".
func (e Estimate) String() string {
	if e.Low == nil || e.High == nil {
		return fmt.Sprintf("%.6g (n=%d, no %.0f%% CI)", e.Median, e.N, 95.0)
	}
	return fmt.Sprintf("%.6g [%.6g, %.6g]", e.Median, *e.Low, *e.High)
}

func finitePtr(x float64) *float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return nil
	}
	return &x
}
