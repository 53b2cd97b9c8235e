package main

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkResubmit/n=1000/page=100-2         	       1	1656000000 ns/op	         1.020 sbops/msg	       604.0 msgs/s
BenchmarkHoldRelease-2   	  200000	      1456 ns/op	     992 B/op	      14 allocs/op
PASS
ok  	github.com/holdfast-dev/holdfast/internal/drain	80.1s
`
	rows := parseBench(out)
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	if r := rows[0]; r.name != "BenchmarkResubmit/n=1000/page=100" || r.metrics["sbops/msg"] != 1.02 || r.metrics["msgs/s"] != 604 {
		t.Errorf("row 0 %+v", r)
	}
	if r := findBench(rows, "HoldRelease"); r == nil || r.metrics["allocs/op"] != 14 || r.units[0] != "ns/op" {
		t.Errorf("HoldRelease row %+v", r)
	}
	if got := benchTable(rows, []string{"sbops/msg", "allocs/op"}); got != "| benchmark | sbops/msg | allocs/op |\n|---|---|---|\n"+
		"| BenchmarkResubmit/n=1000/page=100 | 1.02 |  |\n| BenchmarkHoldRelease |  | 14 |\n" {
		t.Errorf("table:\n%s", got)
	}
}

func TestMarkdownRows(t *testing.T) {
	text := "intro\n\n| instances | msg/s total |\n|---|---|\n| 1 | 7553 |\n| 2 | 7947 |\n\nafter\n| x |\n"
	rows := markdownRows(text)
	if len(rows) != 2 || rows[0]["instances"] != "1" || rows[1]["msg/s total"] != "7947" {
		t.Fatalf("rows %v", rows)
	}
}

// The steady rate leaves out a slow start and a slow end.
func TestSteadyRate(t *testing.T) {
	var stamps []int64
	at := 500 * time.Millisecond // link set-up
	for range 1000 {
		stamps = append(stamps, int64(at))
		at += time.Millisecond
	}
	stamps[999] += int64(time.Second) // a straggler
	if got := steadyRate(stamps); math.Abs(got-1000) > 1 {
		t.Fatalf("steady rate %.1f msg/s, want 1000", got)
	}
}

// The soak's outcome classes have the shares its table promises.
func TestSoakClassShares(t *testing.T) {
	const n = 100000
	got := map[string]int{}
	for i := range n {
		got[soakClass(fmt.Sprintf("soak-%d", i))]++
	}
	want := map[string]float64{classComplete: 0.944, classFailOnce: 0.02, classPanicOnce: 0.005, classDeadLetter: 0.02,
		classDeferOnce: 0.01, classSlow: 0.001}
	for c, share := range want {
		if d := float64(got[c])/n - share; math.Abs(d) > 0.002 {
			t.Errorf("%s: %d of %d, want a share of %.3f", c, got[c], n, share)
		}
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{14160: "14160", 1.0204: "1.02", 1.008: "1.008", 0.5: "0.5", 123.64: "123.6"} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
