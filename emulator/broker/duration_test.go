package broker

import (
	"errors"
	"testing"
	"time"
)

func TestParseISODuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"PT1M", time.Minute},
		{"PT30S", 30 * time.Second},
		{"P14D", 14 * 24 * time.Hour},
		{"PT1H30M", 90 * time.Minute},
		{"PT0.5S", 500 * time.Millisecond},
		{"PT1,25S", 1250 * time.Millisecond},
		{"PT0.0000001S", 100 * time.Nanosecond},
		{"P1W", 7 * 24 * time.Hour},
		{"P1DT2H3M4S", 26*time.Hour + 3*time.Minute + 4*time.Second},
		{"P1Y", 365 * 24 * time.Hour},
		{"P1M", 30 * 24 * time.Hour},
		{"PT0S", 0},
		{"P10675199D", MaxDuration},
		{"P10675199DT2H48M5.4775807S", MaxDuration},
		{"P106751D", 106751 * 24 * time.Hour},
	}
	for _, tt := range tests {
		got, err := ParseISODuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseISODuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseISODurationErrors(t *testing.T) {
	for _, in := range []string{"", "1M", "P", "PT", "P1H", "PT1D", "P1S", "PT1M1H", "PT1S1S", "P1.5D", "PTS",
		"PT1", "-PT1S", "P-1D", "PT1..5S", "PT1.S", "P99999999999999999999D", "P1DT", "PT1HT1M", "pt1m"} {
		if d, err := ParseISODuration(in); !errors.Is(err, errDurationSyntax) {
			t.Errorf("ParseISODuration(%q) = %v, %v; want a syntax error", in, d, err)
		}
	}
}

func TestFormatISODurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, 14 * 24 * time.Hour, 1500 * time.Millisecond,
		26*time.Hour + 3*time.Minute + 4*time.Second} {
		s := FormatISODuration(d)
		got, err := ParseISODuration(s)
		if err != nil || got != d {
			t.Errorf("FormatISODuration(%v) = %q, which parses to %v, %v", d, s, got, err)
		}
	}
}
