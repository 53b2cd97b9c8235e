package devhost

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule yields the next occurrence strictly after t. Implementations are immutable and safe for
// concurrent use.
type schedule interface {
	Next(t time.Time) time.Time
}

// cronParser accepts NCRONTAB with six fields ({second} {minute} {hour} {day} {month}
// {day-of-week}) and, like the current timer extension, five fields without seconds.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// parseSchedule parses a timer schedule: an NCRONTAB expression evaluated in UTC (as in Azure),
// or a TimeSpan "hh:mm:ss" / "d.hh:mm:ss" (a constant interval; Azure accepts it only on
// App Service plans).
func parseSchedule(s string) (schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty schedule")
	}
	if !strings.ContainsAny(s, " \t") && strings.Contains(s, ":") {
		d, err := parseTimeSpan(s)
		if err != nil {
			return nil, err
		}
		if d <= 0 {
			return nil, fmt.Errorf("TimeSpan schedule %q must be positive", s)
		}
		return interval(d), nil
	}
	if strings.HasPrefix(s, "@") || strings.Contains(s, "TZ=") {
		return nil, fmt.Errorf("not an NCRONTAB expression (descriptors and time zones are not supported)")
	}
	if n := len(strings.Fields(s)); n != 5 && n != 6 {
		return nil, fmt.Errorf("NCRONTAB needs 6 fields {second} {minute} {hour} {day} {month} {day-of-week}, got %d", n)
	}
	sch, err := cronParser.Parse("TZ=UTC " + s)
	if err != nil {
		return nil, err
	}
	return sch, nil
}

// interval is a TimeSpan schedule: the next occurrence is one interval after t.
type interval time.Duration

func (d interval) Next(t time.Time) time.Time { return t.Add(time.Duration(d)) }

// parseTimeSpan parses the .NET TimeSpan forms "hh:mm:ss", "hh:mm:ss.fff" and "d.hh:mm:ss".
func parseTimeSpan(s string) (time.Duration, error) {
	orig := s
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("%q is not a TimeSpan (want hh:mm:ss or d.hh:mm:ss)", orig)
	}
	var days int
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return bad()
	}
	if d, h, ok := strings.Cut(parts[0], "."); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return bad()
		}
		days, parts[0] = n, h
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return bad()
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec*float64(time.Second)), nil
}

// firesMoreThanOncePerMinute reports whether two consecutive occurrences after now are less than
// a minute apart; the host then turns the schedule monitor off (ScheduleStatus is null).
func firesMoreThanOncePerMinute(s schedule, now time.Time) bool {
	a := s.Next(now)
	b := s.Next(a)
	return b.Sub(a) < time.Minute
}
