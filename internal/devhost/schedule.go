package devhost

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/holdfast-dev/holdfast/internal/config"
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

// parseTimeSpan parses a .NET TimeSpan ("hh:mm:ss", "hh:mm:ss.fff", "d.hh:mm:ss") as the handler's settings
// do (config.ParseTimeSpan), so the dev host and the handler never read one value two ways.
func parseTimeSpan(s string) (time.Duration, error) { return config.ParseTimeSpan(s) }

// firesMoreThanOncePerMinute reports whether two consecutive occurrences after now are less than
// a minute apart; the host then turns the schedule monitor off (ScheduleStatus is null).
func firesMoreThanOncePerMinute(s schedule, now time.Time) bool {
	a := s.Next(now)
	b := s.Next(a)
	return b.Sub(a) < time.Minute
}
