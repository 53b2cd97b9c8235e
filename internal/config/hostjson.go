package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// HostJSONFile is the name of the Functions host configuration file.
const HostJSONFile = "host.json"

// FunctionTimeoutFromDir reads functionTimeout from dir/host.json. A missing file, or a file without
// functionTimeout, gives DefaultFunctionTimeout and no error; an unreadable or malformed file is an error.
func FunctionTimeoutFromDir(dir string) (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join(dir, HostJSONFile))
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultFunctionTimeout, nil
	}
	if err != nil {
		return 0, fmt.Errorf("config: read %s: %w", HostJSONFile, err)
	}
	return FunctionTimeoutFromHostJSON(data)
}

// FunctionTimeoutFromHostJSON extracts functionTimeout ("hh:mm:ss", "d.hh:mm:ss" or "-1" for unbounded) from
// host.json content. Without the key it returns DefaultFunctionTimeout; "-1" gives UnboundedFunctionTimeout.
func FunctionTimeoutFromHostJSON(data []byte) (time.Duration, error) {
	var doc struct {
		FunctionTimeout *string `json:"functionTimeout"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, fmt.Errorf("config: %s is not valid JSON: %w: %w", HostJSONFile, err, ErrInvalid)
	}
	if doc.FunctionTimeout == nil {
		return DefaultFunctionTimeout, nil
	}
	d, err := parseFunctionTimeout(*doc.FunctionTimeout)
	if err != nil {
		return 0, fmt.Errorf("config: %s functionTimeout: %w", HostJSONFile, err)
	}
	return d, nil
}

// ParseTimeSpan parses a .NET TimeSpan string: "[-][d.]hh:mm:ss[.fffffff]", or "-1" (negative, unbounded).
// Every field is plain decimal digits (hours, minutes and seconds one or two, the fraction one to seven), so
// what Go's number parsers would also take ("NaN", "1e1", "0x10", "+5", "5_0") is refused.
func ParseTimeSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a [d.]hh:mm:ss time span: %w", s, ErrInvalid)
	if s == "-1" {
		return -1, nil
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var days int64
	if dot, colon := strings.IndexByte(s, '.'), strings.IndexByte(s, ':'); dot >= 0 && colon > dot {
		n, ok := decimal(s[:dot], 8)
		if !ok {
			return 0, bad
		}
		days, s = n, s[dot+1:]
	}
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return 0, bad
	}
	whole, frac, hasFrac := strings.Cut(f[2], ".")
	h, okH := decimal(f[0], 2)
	m, okM := decimal(f[1], 2)
	sec, okS := decimal(whole, 2)
	var ns int64
	okF := true
	if hasFrac {
		ns, okF = decimal((frac + "000000000")[:9], 9)
		okF = okF && len(frac) >= 1 && len(frac) <= 7
	}
	if !okH || !okM || !okS || !okF || h > 23 || m > 59 || sec > 59 {
		return 0, bad
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec)*time.Second + time.Duration(ns)
	if neg {
		d = -d
	}
	return d, nil
}

// decimal parses 1 to most ASCII digits.
func decimal(s string, most int) (int64, bool) {
	if len(s) == 0 || len(s) > most {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// LoadApp loads the handler's configuration the way it starts in a function app: host.json's functionTimeout
// from dir (the script root), then LoadWith, where the app setting AzureFunctionsJobHost__functionTimeout
// overrides it. opts.FunctionTimeout is ignored; a nil opts means defaults.
func LoadApp(getenv func(string) string, dir string, opts *LoadOptions) (*Config, error) {
	timeout, err := FunctionTimeoutFromDir(dir)
	if err != nil {
		return nil, err
	}
	o := LoadOptions{}
	if opts != nil {
		o = *opts
	}
	o.FunctionTimeout = timeout
	return LoadWith(getenv, &o)
}
