package broker

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxDuration stands for "never": the value an ISO-8601 duration longer than time.Duration can
// hold (such as .NET's TimeSpan.MaxValue, P10675199DT2H48M5.4775807S) is clamped to.
const MaxDuration = time.Duration(math.MaxInt64)

// errDurationSyntax is wrapped by every ParseISODuration syntax error.
var errDurationSyntax = errors.New("invalid ISO-8601 duration")

// isoDuration is a parsed duration: whole milliseconds plus a sub-millisecond remainder, so
// values far beyond time.Duration (P10675199D) still compare exactly.
type isoDuration struct {
	ms   int64 // whole milliseconds
	nsub int64 // 0..999999 nanoseconds beyond ms
}

func (d isoDuration) duration() time.Duration {
	if d.ms > (math.MaxInt64-d.nsub)/int64(time.Millisecond) {
		return MaxDuration
	}
	return time.Duration(d.ms)*time.Millisecond + time.Duration(d.nsub)
}

func (d isoDuration) less(o isoDuration) bool {
	return d.ms < o.ms || (d.ms == o.ms && d.nsub < o.nsub)
}

// ParseISODuration parses an ISO-8601 duration as the official emulator's Config.json and
// .NET's XmlConvert write them: P[nY][nM][nW][nD][T[nH][nM][n[.f]S]], e.g. PT1M, PT30S, P14D,
// PT1H30M, PT0.5S. Years count 365 days and months 30 days, as in .NET. Only the seconds may
// carry a fraction. Negative durations are rejected. Values longer than time.Duration can hold
// return MaxDuration.
func ParseISODuration(s string) (time.Duration, error) {
	d, err := parseISO(s)
	if err != nil {
		return 0, err
	}
	return d.duration(), nil
}

func parseISO(s string) (isoDuration, error) {
	fail := func(why string) (isoDuration, error) {
		return isoDuration{}, fmt.Errorf("%w %q: %s", errDurationSyntax, s, why)
	}
	rest, ok := strings.CutPrefix(s, "P")
	if !ok {
		return fail("must start with P")
	}
	if rest == "" || rest == "T" {
		return fail("no components")
	}
	const day = int64(24 * 60 * 60 * 1000)
	units := map[byte]int64{'Y': 365 * day, 'M': 30 * day, 'W': 7 * day, 'D': day}
	order := "YMWD"
	var total isoDuration
	inTime := false
	last := -1
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return fail("second T")
			}
			inTime, last = true, -1
			rest = rest[1:]
			if rest == "" {
				return fail("T without time components")
			}
			units = map[byte]int64{'H': 60 * 60 * 1000, 'M': 60 * 1000, 'S': 1000}
			order = "HMS"
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == ',') {
			i++
		}
		if i == 0 || i == len(rest) {
			return fail("expected a number followed by a unit")
		}
		num, unit := rest[:i], rest[i]
		rest = rest[i+1:]
		pos := strings.IndexByte(order, unit)
		if pos < 0 {
			return fail(fmt.Sprintf("unknown unit %q here", unit))
		}
		if pos <= last {
			return fail(fmt.Sprintf("unit %q out of order or repeated", unit))
		}
		last = pos
		part, err := scaleNumber(num, units[unit], unit == 'S')
		if err != nil {
			return fail(err.Error())
		}
		total.nsub += part.nsub
		if total.nsub >= 1e6 {
			total.nsub -= 1e6
			part.ms++
		}
		if total.ms > math.MaxInt64-part.ms {
			return fail("too long")
		}
		total.ms += part.ms
	}
	return total, nil
}

// scaleNumber multiplies a decimal string by msPerUnit. Only seconds may carry a fraction.
func scaleNumber(num string, msPerUnit int64, fractionOK bool) (isoDuration, error) {
	whole, frac, hasFrac := strings.Cut(strings.ReplaceAll(num, ",", "."), ".")
	if hasFrac && !fractionOK {
		return isoDuration{}, errors.New("only seconds may have a fraction")
	}
	if whole == "" || strings.Contains(frac, ".") || (hasFrac && frac == "") {
		return isoDuration{}, fmt.Errorf("bad number %q", num)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/msPerUnit {
		return isoDuration{}, fmt.Errorf("number %q too large", num)
	}
	d := isoDuration{ms: w * msPerUnit}
	if hasFrac {
		if len(frac) > 9 {
			frac = frac[:9] // finer than a nanosecond is dropped
		}
		frac += strings.Repeat("0", 9-len(frac))
		ns, err := strconv.ParseInt(frac, 10, 64) // nanoseconds of a second
		if err != nil {
			return isoDuration{}, fmt.Errorf("bad fraction %q", num)
		}
		d.ms += ns / 1e6
		d.nsub = ns % 1e6
	}
	return d, nil
}

// FormatISODuration writes d as an ISO-8601 duration that ParseISODuration reads back
// (e.g. PT1M, P14D, PT1H30M, PT0.5S). Negative durations are written as their magnitude.
func FormatISODuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10))
		b.WriteByte('D')
	}
	if d == 0 {
		return b.String()
	}
	b.WriteByte('T')
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	if h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "H")
	}
	if m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "M")
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}
