package infratest

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

const sample = `// header comment with a quote: don't
targetScope = 'resourceGroup'
import { roleIds } from 'roles.bicep'

@description('Lock in seconds (it\'s bounded).')
@minValue(5)
@maxValue(300)
param lock int = 60

@allowed([
  'a'
  'b'
])
param pick string = 'a'

param noDefault string

var url = 'https://${pick}.example/${lock == 1 ? 'x' : 'y'}' // trailing // comment
var settings = {
  'quoted-key': 'v'
  plain: url
  nested: { a: 1, b: 'two' }
  call: union({ x: 1 }, {
    y: 2
  })
}

resource q 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = if (pick == 'a') {
  name: 'q'
  properties: {
    lockDuration: 'PT${lock}S'
    requiresSession: false
  }
}

/* block
   comment */
output name string = q.name
`

func TestParseSample(t *testing.T) {
	tpl, err := ParseString("sample.bicep", sample)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, d := range tpl.Decls {
		kinds = append(kinds, d.Kind+":"+d.Name)
	}
	want := []string{"targetScope:", "import:", "param:lock", "param:pick", "param:noDefault", "var:url", "var:settings", "resource:q", "output:name"}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("declarations = %v, want %v", kinds, want)
	}

	lock := tpl.Get("param", "lock")
	if lock.Type != "int" || lock.Line != 8 || len(lock.Decorators) != 3 {
		t.Errorf("lock = %+v", lock)
	}
	if v, ok := lock.Value.Literal(); !ok || v != 60 {
		t.Errorf("lock default = %v, %v", v, ok)
	}
	if d := lock.Decorator("maxValue"); d == nil || d.Args.Text != "300" {
		t.Errorf("maxValue = %+v", d)
	}
	if d := tpl.Get("param", "noDefault"); d == nil || d.Value.Text != "" {
		t.Errorf("noDefault = %+v", d)
	}

	items, err := tpl.Get("param", "pick").Decorator("allowed").Args.Items()
	if err != nil || len(items) != 2 || items[1].Text != "'b'" {
		t.Errorf("allowed items = %v, %v", items, err)
	}

	if got := tpl.Get("var", "url").Value.Text; got != `'https://${pick}.example/${lock == 1 ? 'x' : 'y'}'` {
		t.Errorf("url = %q", got)
	}

	settings := tpl.Get("var", "settings").Value
	if got := settings.Keys(); !reflect.DeepEqual(got, []string{"quoted-key", "plain", "nested", "call"}) {
		t.Errorf("keys = %v", got)
	}
	if v, ok := settings.Prop("nested.b"); !ok || v.Text != "'two'" {
		t.Errorf("nested.b = %q, %v", v.Text, ok)
	}
	if _, ok := settings.Prop("nested.c"); ok {
		t.Error("nested.c found")
	}
	if v, _ := settings.Prop("call"); v.Normalized() != "union({ x: 1 }, { y: 2 })" {
		t.Errorf("call = %q", v.Normalized())
	}

	q := tpl.Get("resource", "q")
	if q.Type != "Microsoft.ServiceBus/namespaces/queues@2024-01-01" || q.Condition.Text != "pick == 'a'" {
		t.Errorf("resource = type %q condition %q", q.Type, q.Condition.Text)
	}
	if v, ok := q.Value.Prop("properties.requiresSession"); !ok || v.Text != "false" {
		t.Errorf("requiresSession = %q", v.Text)
	}
	if v, _ := q.Value.Prop("properties.lockDuration"); !reflect.DeepEqual(v.Identifiers(), []string{"lock"}) {
		t.Errorf("identifiers = %v", v.Identifiers())
	}
}

func TestLiteral(t *testing.T) {
	tests := []struct {
		text string
		want any
		ok   bool
	}{
		{"true", true, true},
		{"false", false, true},
		{"42", 42, true},
		{"'x'", "x", true},
		{`'it\'s'`, "it's", true},
		{"''", "", true},
		{"'a${b}'", nil, false},
		{"a.b", nil, false},
		{"'a' == 'b'", nil, false},
	}
	for _, tt := range tests {
		tpl, err := ParseString("t.bicep", "var v = "+tt.text+"\n")
		if err != nil {
			t.Fatalf("%s: %v", tt.text, err)
		}
		got, ok := tpl.Get("var", "v").Value.Literal()
		if ok != tt.ok || got != tt.want {
			t.Errorf("Literal(%s) = %v, %v; want %v, %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src string }{
		{"unclosed object", "var a = {\n  b: 1\n"},
		{"unterminated string", "var a = 'abc\n"},
		{"unterminated comment", "/* never closed\nvar a = 1\n"},
		{"stray closing bracket", "var a = 1)\n"},
		{"dangling decorator", "var a = 1\n@description('x')\n"},
		{"unknown statement", "resorce q 'A@1' = {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseString("bad.bicep", tt.src)
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("err = %v, want ErrSyntax", err)
			}
		})
	}
}

// The reader never panics, and whatever it accepts keeps source and mask aligned.
func FuzzParseString(f *testing.F) {
	f.Add(sample)
	f.Add("var a = '${b ? 'c' : '${d}'}'\n")
	f.Add("var a = '''\nmulti 'line'\n'''\n")
	f.Add("@allowed([\n  1\n  2\n])\nparam p int = 1\n")
	for _, name := range []string{"main.bicep", "modules/functionapp.bicep", "modules/servicebus.bicep"} {
		if b, err := os.ReadFile(infraPath(name)); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := ParseString("fuzz.bicep", src)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if len(tpl.mask) != len(tpl.src) {
			t.Fatalf("mask length %d, source length %d", len(tpl.mask), len(tpl.src))
		}
		for _, d := range tpl.Decls {
			if len(d.Value.Text) != len(d.Value.mask) {
				t.Fatalf("%s %s: value and mask differ in length", d.Kind, d.Name)
			}
			if d.Value.IsObject() {
				for _, e := range mustEntries(t, d.Value) {
					_ = e.Value.Identifiers()
					_, _ = e.Value.Literal()
				}
			}
		}
	})
}

func mustEntries(t *testing.T, e Expr) []Entry {
	entries, err := e.Entries()
	if err != nil && !errors.Is(err, ErrSyntax) {
		t.Fatalf("Entries: %v does not wrap ErrSyntax", err)
	}
	return entries
}
