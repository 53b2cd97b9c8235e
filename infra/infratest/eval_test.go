package infratest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const evalSample = `param prefix string = 'My-App_1'
@allowed([
  'a'
  'b'
])
param pick string = 'a'
@minValue(1)
@maxValue(240)
param minutes int = 90
param required string

var clean = reduce(range(0, length(toLower(prefix))), '', (acc, i) => contains('abcdefghijklmnopqrstuvwxyz0123456789', substring(toLower(prefix), i, 1)) ? '${acc}${substring(toLower(prefix), i, 1)}' : acc)
var timeout = '${padLeft(string(minutes / 60), 2, '0')}:${padLeft(string(minutes % 60), 2, '0')}:00'
var settings = union({
  A: 'x'
  B: pick == 'a' ? 'first' : 'second'
}, empty(required) ? {} : { C: required }) // comment
var list = [
  1
  2, 3
]
var picked = filter(map(list, x => x * 10), x => x > 10)
var escaped = 'it\'s \${not} ${'nested ${pick}'}'
`

func evalScope(t *testing.T, src string, params map[string]any) *Scope {
	t.Helper()
	tpl, err := ParseString("sample.bicep", src)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewScope(tpl, params, testEnv(), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEvalSample(t *testing.T) {
	s := evalScope(t, evalSample, map[string]any{"required": "r"})
	want := map[string]any{
		"clean":    "myapp1",
		"timeout":  "01:30:00",
		"settings": map[string]any{"A": "x", "B": "first", "C": "r"},
		"list":     []any{1, 2, 3},
		"picked":   []any{20, 30},
		"escaped":  "it's ${not} nested a",
	}
	for name, w := range want {
		got, err := s.Var(name)
		if err != nil {
			t.Errorf("var %s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("var %s = %#v, want %#v", name, got, w)
		}
	}
	for src, w := range map[string]any{
		"1 + 2 * 3 - 4 / 2": 5, "-(2 - 5)": 3, "!(1 < 2) || 2 >= 2": true, "'A' =~ 'a'": true, "null ?? 'd'": "d",
		"take('abcdef', 3)": "abc", "take('ab', 5)": "ab", "min(10, 3, 7)": 3, "split('a:b', ':')[1]": "b",
		"{ a: { b: 1 } }.a.b": 1, "{ a: 1 }.?b": nil, "toLower(uniqueString('x')) == uniqueString('x')": true,
		"length(uniqueString('a', 'b'))": 13, "environment().suffixes.storage": "core.windows.net",
		"resourceGroup().location": "westeurope", "join(['a', 'b'], '-')": "a-b", "replace('a.b', '.', '')": "ab",
	} {
		got, err := s.EvalString(src)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v, %v; want %#v", src, got, err, w)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	s := evalScope(t, evalSample, map[string]any{"required": ""})
	for src, want := range map[string]string{
		"nope":                  "unknown symbol",
		"frobnicate(1)":         "not supported",
		"'a' + 'b'":             "no string +",
		"[1][5]":                "out of range",
		"{ a: 1 }.b":            "no property",
		"substring('ab', 1, 5)": "out of range",
		"'unterminated":         "unterminated",
	} {
		_, err := s.EvalString(src)
		if !errors.Is(err, ErrEval) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want ErrEval mentioning %q", src, err, want)
		}
	}
	tpl, _ := ParseString("sample.bicep", evalSample)
	for name, params := range map[string]map[string]any{
		"missing required": {},
		"unknown":          {"required": "", "other": 1},
		"not allowed":      {"required": "", "pick": "c"},
		"above max":        {"required": "", "minutes": 241},
		"wrong type":       {"required": 5},
	} {
		if _, err := NewScope(tpl, params, testEnv(), nil, ""); !errors.Is(err, ErrEval) {
			t.Errorf("%s: NewScope error %v, want ErrEval", name, err)
		}
	}
}
