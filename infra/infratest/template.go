// Package infratest reads the Bicep templates under infra/ and checks the invariants the deployment relies on
// (see invariants_test.go). It holds a small structural reader for Bicep: enough to find declarations, their
// decorators and the properties of object literals. It is not a compiler and does not evaluate expressions;
// the syntax itself is checked by infra/check/syntax.mjs and, where installed, by the Bicep CLI.
package infratest

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every error returned for text the reader cannot follow.
var ErrSyntax = errors.New("bicep: cannot read template")

// Template is one parsed .bicep file. It is immutable after Parse and safe for concurrent reads.
type Template struct {
	Path  string
	src   string // original text
	mask  string // src with comments blanked and string contents replaced by '~'; same byte offsets
	Decls []*Decl
}

// Decl is one top-level declaration with the decorators written above it.
type Decl struct {
	Kind       string // param, var, resource, module, output, import, targetScope, using, type, func, metadata
	Name       string // symbol name ("" for import, targetScope, using)
	Type       string // param/output: declared type; resource: 'Type@api'; module: path (both unquoted)
	Line       int    // 1-based line of the keyword
	Decorators []Decorator
	Value      Expr // after '=' (for resources and modules: the body object, condition removed)
	Condition  Expr // resource/module: the expression inside if (...), else empty
}

// Decorator is one @name(args) line.
type Decorator struct {
	Name string
	Args Expr // text between the parentheses
}

// Expr is the text of an expression together with its masked twin (same length).
type Expr struct {
	Text string
	mask string
}

// Parse reads a template file.
func Parse(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bicep: %w", err)
	}
	return ParseString(path, string(b))
}

// ParseString reads template text; path is only used in messages.
func ParseString(path, src string) (*Template, error) {
	m, err := maskSource(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSyntax, path, err)
	}
	t := &Template{Path: path, src: src, mask: m}
	if err := t.split(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSyntax, path, err)
	}
	return t, nil
}

// maskSource blanks comments (to spaces) and the literal text of strings (to '~', quotes and interpolated
// expressions kept), keeping newlines and byte offsets, so that structure can be found on the mask and values cut from the source.
func maskSource(src string) (string, error) {
	out := []byte(src)
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				out[i] = ' '
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return "", fmt.Errorf("unterminated comment at line %d", lineOf(src, i))
			}
			for j := i; j < i+2+end+2; j++ {
				if out[j] != '\n' {
					out[j] = ' '
				}
			}
			i += 2 + end + 2
		case strings.HasPrefix(src[i:], "'''"):
			end := strings.Index(src[i+3:], "'''")
			if end < 0 {
				return "", fmt.Errorf("unterminated multi-line string at line %d", lineOf(src, i))
			}
			blank(out, i+3, i+3+end)
			i += 3 + end + 3
		case src[i] == '\'':
			end, err := maskString(src, out, i)
			if err != nil {
				return "", err
			}
			i = end
		default:
			i++
		}
	}
	return string(out), nil
}

func blank(b []byte, from, to int) {
	for j := from; j < to; j++ {
		if b[j] != '\n' {
			b[j] = '~'
		}
	}
}

// maskString masks the string literal that opens at src[start] and returns the offset just past its closing
// quote. Literal text (escapes included) becomes '~'; the expressions of ${...} interpolations are kept, with
// their own strings masked in turn, so that identifiers used inside interpolations stay visible.
func maskString(src string, out []byte, start int) (int, error) {
	for i := start + 1; i < len(src); i++ {
		switch {
		case src[i] == '\\' && i+1 < len(src):
			out[i], out[i+1] = '~', '~'
			i++
		case src[i] == '\'':
			return i + 1, nil
		case src[i] == '\n':
			return 0, fmt.Errorf("unterminated string at line %d", lineOf(src, start))
		case strings.HasPrefix(src[i:], "${"):
			depth := 1
			for i += 2; i < len(src) && depth > 0; i++ {
				switch src[i] {
				case '{':
					depth++
				case '}':
					depth--
				case '\'':
					end, err := maskString(src, out, i)
					if err != nil {
						return 0, err
					}
					i = end - 1
				}
			}
			i-- // the outer loop's i++ moves past the closing brace
		default:
			out[i] = '~'
		}
	}
	return 0, fmt.Errorf("unterminated string at line %d", lineOf(src, start))
}

func lineOf(s string, off int) int { return strings.Count(s[:off], "\n") + 1 }

var (
	declHead  = regexp.MustCompile(`^(param|var|resource|module|output|import|targetScope|using|type|func|metadata)\b`)
	decorHead = regexp.MustCompile(`^@([A-Za-z_][A-Za-z0-9_.]*)\s*\(`)
	ident     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)
)

// split cuts the mask into top-level statements: a statement ends at a newline outside brackets.
func (t *Template) split() error {
	var pending []Decorator
	depth, start := 0, -1
	for i := 0; i <= len(t.mask); i++ {
		if i == len(t.mask) || (t.mask[i] == '\n' && depth == 0) {
			if start >= 0 {
				d, dec, err := t.statement(start, i)
				if err != nil {
					return err
				}
				switch {
				case dec != nil:
					pending = append(pending, *dec)
				case d != nil:
					d.Decorators, pending = pending, nil
					t.Decls = append(t.Decls, d)
				}
				start = -1
			}
			continue
		}
		c := t.mask[i]
		if start < 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			start = i
		}
		switch c {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth < 0 {
				return fmt.Errorf("unbalanced %q at line %d", c, lineOf(t.src, i))
			}
		}
	}
	if depth != 0 {
		return fmt.Errorf("unclosed bracket at end of file")
	}
	if len(pending) > 0 {
		return fmt.Errorf("decorator @%s is not followed by a declaration", pending[0].Name)
	}
	return nil
}

func (t *Template) expr(from, to int) Expr {
	for from < to && isSpace(t.mask[from]) {
		from++
	}
	for to > from && isSpace(t.mask[to-1]) {
		to--
	}
	return Expr{Text: t.src[from:to], mask: t.mask[from:to]}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// statement reads the statement mask[from:to] as a decorator or a declaration.
func (t *Template) statement(from, to int) (*Decl, *Decorator, error) {
	m := t.mask[from:to]
	line := lineOf(t.src, from)
	if sm := decorHead.FindStringSubmatch(m); sm != nil {
		open := len(sm[0]) - 1
		cl := matching(m, open)
		if cl < 0 || strings.TrimSpace(m[cl+1:]) != "" {
			return nil, nil, fmt.Errorf("line %d: malformed decorator", line)
		}
		return nil, &Decorator{Name: sm[1], Args: t.expr(from+open+1, from+cl)}, nil
	}
	kw := declHead.FindString(m)
	if kw == "" {
		return nil, nil, fmt.Errorf("line %d: unknown statement %q", line, firstLine(t.src[from:to]))
	}
	d := &Decl{Kind: kw, Line: line}
	rest := from + len(kw)
	skip := func() {
		for rest < to && isSpace(t.mask[rest]) {
			rest++
		}
	}
	word := func() string {
		skip()
		w := ident.FindString(t.mask[rest:to])
		rest += len(w)
		return w
	}
	quoted := func() string {
		skip()
		if rest >= to || t.mask[rest] != '\'' {
			return ""
		}
		end := strings.IndexByte(t.mask[rest+1:to], '\'')
		s := t.src[rest+1 : rest+1+end]
		rest += end + 2
		return s
	}
	switch kw {
	case "param", "output":
		d.Name, d.Type = word(), word()
	case "var", "type", "metadata", "func":
		d.Name = word()
	case "resource", "module":
		d.Name, d.Type = word(), quoted()
		if d.Type == "" {
			return nil, nil, fmt.Errorf("line %d: %s %s has no quoted type", line, kw, d.Name)
		}
	default: // import, targetScope, using: keep the rest as the value
		d.Value = t.expr(rest, to)
		return d, nil, nil
	}
	eq := strings.IndexByte(t.mask[rest:to], '=')
	if eq < 0 {
		if kw == "param" {
			return d, nil, nil // no default
		}
		return nil, nil, fmt.Errorf("line %d: %s %s has no '='", line, kw, d.Name)
	}
	valFrom := rest + eq + 1
	if kw == "resource" || kw == "module" {
		v := strings.TrimLeft(t.mask[valFrom:to], " \t")
		valFrom = to - len(v)
		if strings.HasPrefix(v, "if") {
			open := strings.IndexByte(v, '(')
			cl := matching(v, open)
			if open < 0 || cl < 0 {
				return nil, nil, fmt.Errorf("line %d: malformed condition", line)
			}
			d.Condition = t.expr(valFrom+open+1, valFrom+cl)
			valFrom += cl + 1
		}
	}
	d.Value = t.expr(valFrom, to)
	return d, nil, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// matching returns the index of the bracket closing the one at s[open], or -1.
func matching(s string, open int) int {
	if open < 0 || open >= len(s) {
		return -1
	}
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// Find returns the declarations of a kind, in file order.
func (t *Template) Find(kind string) []*Decl {
	var out []*Decl
	for _, d := range t.Decls {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// Get returns the declaration of a kind and name, or nil.
func (t *Template) Get(kind, name string) *Decl {
	for _, d := range t.Decls {
		if d.Kind == kind && d.Name == name {
			return d
		}
	}
	return nil
}

// Decorator returns the decorator with the given name, or nil.
func (d *Decl) Decorator(name string) *Decorator {
	for i := range d.Decorators {
		if d.Decorators[i].Name == name {
			return &d.Decorators[i]
		}
	}
	return nil
}

// Entry is one key: value of an object literal.
type Entry struct {
	Key   string
	Value Expr
}

// IsObject reports whether the expression is an object literal.
func (e Expr) IsObject() bool {
	return strings.HasPrefix(e.mask, "{") && matching(e.mask, 0) == len(e.mask)-1
}

// Entries returns the properties of an object literal in order; an error when e is not one.
func (e Expr) Entries() ([]Entry, error) {
	if !e.IsObject() {
		return nil, fmt.Errorf("%w: not an object literal: %s", ErrSyntax, firstLine(e.Text))
	}
	var out []Entry
	i, end := 1, len(e.mask)-1
	for {
		for i < end && (isSpace(e.mask[i]) || e.mask[i] == ',') {
			i++
		}
		if i >= end {
			return out, nil
		}
		var key string
		if e.mask[i] == '\'' {
			cl := strings.IndexByte(e.mask[i+1:], '\'')
			key, i = e.Text[i+1:i+1+cl], i+cl+2
		} else {
			key = ident.FindString(e.mask[i:])
			if key == "" {
				return nil, fmt.Errorf("%w: bad property name at %q", ErrSyntax, firstLine(e.Text[i:]))
			}
			i += len(key)
		}
		for i < end && (e.mask[i] == ' ' || e.mask[i] == '\t') {
			i++
		}
		if i >= end || e.mask[i] != ':' {
			return nil, fmt.Errorf("%w: property %s has no ':'", ErrSyntax, key)
		}
		i++
		from, depth := i, 0
		for ; i < end; i++ {
			c := e.mask[i]
			if depth == 0 && (c == '\n' || c == ',') {
				break
			}
			switch c {
			case '(', '[', '{':
				depth++
			case ')', ']', '}':
				depth--
			}
		}
		v := Expr{Text: e.Text[from:i], mask: e.mask[from:i]}
		out = append(out, Entry{Key: key, Value: v.trim()})
	}
}

func (e Expr) trim() Expr {
	from, to := 0, len(e.mask)
	for from < to && isSpace(e.mask[from]) {
		from++
	}
	for to > from && isSpace(e.mask[to-1]) {
		to--
	}
	return Expr{Text: e.Text[from:to], mask: e.mask[from:to]}
}

// Prop follows a dotted path of object keys ("properties.siteConfig.minTlsVersion"); ok is false when a key
// is missing or a step is not an object literal.
func (e Expr) Prop(path string) (Expr, bool) {
	cur := e
	for _, key := range strings.Split(path, ".") {
		entries, err := cur.Entries()
		if err != nil {
			return Expr{}, false
		}
		found := false
		for _, en := range entries {
			if en.Key == key {
				cur, found = en.Value, true
				break
			}
		}
		if !found {
			return Expr{}, false
		}
	}
	return cur, true
}

// Keys returns the property names of an object literal.
func (e Expr) Keys() []string {
	entries, _ := e.Entries()
	keys := make([]string, len(entries))
	for i, en := range entries {
		keys[i] = en.Key
	}
	return keys
}

// Items returns the elements of an array literal (one per line or comma), or an error.
func (e Expr) Items() ([]Expr, error) {
	if !strings.HasPrefix(e.mask, "[") || matching(e.mask, 0) != len(e.mask)-1 {
		return nil, fmt.Errorf("%w: not an array literal: %s", ErrSyntax, firstLine(e.Text))
	}
	var out []Expr
	depth, from := 0, 1
	for i := 1; i < len(e.mask); i++ {
		c := e.mask[i]
		if depth == 0 && (c == '\n' || c == ',' || i == len(e.mask)-1) {
			if v := (Expr{Text: e.Text[from:i], mask: e.mask[from:i]}).trim(); v.Text != "" {
				out = append(out, v)
			}
			from = i + 1
			continue
		}
		switch c {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		}
	}
	return out, nil
}

// Literal returns the value of a literal: string (without quotes, no interpolation), int or bool. ok is false
// for anything else.
func (e Expr) Literal() (any, bool) {
	s := e.Text
	switch {
	case s == "true":
		return true, true
	case s == "false":
		return false, true
	case len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' && !strings.Contains(s, "${") &&
		strings.IndexByte(e.mask[1:len(e.mask)-1], '\'') < 0:
		return strings.ReplaceAll(s[1:len(s)-1], `\'`, `'`), true
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	return nil, false
}

// Identifiers returns the identifiers the expression refers to outside string contents (property names after
// a dot excluded).
func (e Expr) Identifiers() []string {
	var out []string
	for _, loc := range regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`).FindAllStringIndex(e.mask, -1) {
		if loc[0] > 0 && (e.mask[loc[0]-1] == '.' || isDigit(e.mask[loc[0]-1])) {
			continue
		}
		out = append(out, e.mask[loc[0]:loc[1]])
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Masked returns the expression with string contents replaced by '~' and comments blanked: useful to match
// code shape without being fooled by text inside strings.
func (e Expr) Masked() string { return e.mask }

// Normalized returns the text with runs of whitespace reduced to one space and comments removed.
func (e Expr) Normalized() string {
	var b strings.Builder
	space := false
	for i := 0; i < len(e.Text); i++ {
		c := e.Text[i]
		if e.mask[i] == ' ' && c != ' ' { // inside a comment
			c = ' '
		}
		if isSpace(c) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
	}
	return b.String()
}
