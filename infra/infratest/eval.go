package infratest

// An evaluator for the Bicep expressions the templates use, so that tests can compute what a deployment would
// produce for given parameters (resource names, app settings) instead of matching expression text. It covers
// literals, string interpolation, objects and arrays, operators, the ternary, member and index access, lambdas
// and the functions listed in callFunction; deployment-time values (resourceGroup(), environment(),
// uniqueString, properties that only exist once a resource is created) come from an Env the test supplies.
// Anything else is an error naming what is not supported, never a guess.

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// ErrEval is wrapped by every evaluation error.
var ErrEval = errors.New("bicep: cannot evaluate")

// Env supplies what only a real deployment knows.
type Env struct {
	// ResourceGroup is resourceGroup(): at least id, name and location.
	ResourceGroup map[string]any
	// Environment is environment(): e.g. {"suffixes": {"storage": "core.windows.net"}}.
	Environment map[string]any
	// Runtime returns a property of a deployed resource that the template does not set itself (for example a
	// managed identity's properties.clientId), by resource type, name and dotted path; ok false if unknown.
	Runtime func(resourceType, name, path string) (any, bool)
}

// Scope evaluates expressions of one template with its parameters bound: a deployment of main.bicep, or of a
// module called from it.
type Scope struct {
	tpl    *Template
	env    *Env
	params map[string]any
	vars   map[string]any
	active map[string]bool // vars being evaluated, to report cycles
	load   func(rel string) (*Template, error)
	dir    string // directory of tpl, for module paths
}

// NewScope binds params to tpl: every parameter without a default must be given, no unknown name may be, and a
// given value must satisfy the parameter's type, @allowed and bounds. load reads a module path relative to dir.
func NewScope(tpl *Template, params map[string]any, env *Env, load func(string) (*Template, error), dir string) (*Scope, error) {
	s := &Scope{tpl: tpl, env: env, params: map[string]any{}, vars: map[string]any{}, active: map[string]bool{}, load: load, dir: dir}
	for name := range params {
		if tpl.Get("param", name) == nil {
			return nil, fmt.Errorf("%w: %s has no parameter %s", ErrEval, tpl.Path, name)
		}
	}
	for _, p := range tpl.Find("param") {
		v, given := params[p.Name]
		if !given {
			if p.Value.Text == "" {
				return nil, fmt.Errorf("%w: %s: required parameter %s not given", ErrEval, tpl.Path, p.Name)
			}
			var err error
			if v, err = s.Eval(p.Value); err != nil {
				return nil, fmt.Errorf("%s: default of %s: %w", tpl.Path, p.Name, err)
			}
		}
		if err := checkParamValue(p, v); err != nil {
			return nil, fmt.Errorf("%w: %s: parameter %s: %w", ErrEval, tpl.Path, p.Name, err)
		}
		s.params[p.Name] = v
	}
	return s, nil
}

// Param returns a bound parameter value.
func (s *Scope) Param(name string) any { return s.params[name] }

// Var evaluates a variable (once).
func (s *Scope) Var(name string) (any, error) {
	if v, ok := s.vars[name]; ok {
		return v, nil
	}
	d := s.tpl.Get("var", name)
	if d == nil {
		return nil, fmt.Errorf("%w: %s has no variable %s", ErrEval, s.tpl.Path, name)
	}
	if s.active[name] {
		return nil, fmt.Errorf("%w: %s: variable %s refers to itself", ErrEval, s.tpl.Path, name)
	}
	s.active[name] = true
	defer delete(s.active, name)
	v, err := s.Eval(d.Value)
	if err != nil {
		return nil, fmt.Errorf("var %s: %w", name, err)
	}
	s.vars[name] = v
	return v, nil
}

// Output evaluates an output.
func (s *Scope) Output(name string) (any, error) {
	d := s.tpl.Get("output", name)
	if d == nil {
		return nil, fmt.Errorf("%w: %s has no output %s", ErrEval, s.tpl.Path, name)
	}
	v, err := s.Eval(d.Value)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", name, err)
	}
	return resolved(v)
}

// Module returns the scope of a module call: the module's template bound to the params the call passes.
func (s *Scope) Module(name string) (*Scope, error) {
	d := s.tpl.Get("module", name)
	if d == nil {
		return nil, fmt.Errorf("%w: %s has no module %s", ErrEval, s.tpl.Path, name)
	}
	tpl, err := s.load(joinPath(s.dir, d.Type))
	if err != nil {
		return nil, err
	}
	params := map[string]any{}
	if pe, ok := d.Value.Prop("params"); ok {
		v, err := s.Eval(pe)
		if err != nil {
			return nil, fmt.Errorf("module %s params: %w", name, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: module %s params is not an object", ErrEval, name)
		}
		for k, x := range m {
			if params[k], err = resolved(x); err != nil {
				return nil, fmt.Errorf("module %s param %s: %w", name, k, err)
			}
		}
	}
	return NewScope(tpl, params, s.env, s.load, dirOf(joinPath(s.dir, d.Type)))
}

// ResourceProp evaluates a property of a resource declaration's body ("name", "properties.x").
func (s *Scope) ResourceProp(resource, path string) (any, error) {
	d := s.tpl.Get("resource", resource)
	if d == nil {
		return nil, fmt.Errorf("%w: %s has no resource %s", ErrEval, s.tpl.Path, resource)
	}
	e, ok := d.Value.Prop(path)
	if !ok {
		return nil, fmt.Errorf("%w: resource %s has no %s", ErrEval, resource, path)
	}
	v, err := s.Eval(e)
	if err != nil {
		return nil, fmt.Errorf("resource %s %s: %w", resource, path, err)
	}
	return resolved(v)
}

// Eval evaluates an expression of this template.
func (s *Scope) Eval(e Expr) (any, error) {
	n, err := parseExpr(e.Text)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrEval, firstLine(e.Text), err)
	}
	return s.eval(n, nil)
}

// EvalString parses and evaluates expression source in this scope (for tests).
func (s *Scope) EvalString(src string) (any, error) {
	v, err := s.Eval(Expr{Text: src})
	if err != nil {
		return nil, err
	}
	return resolved(v)
}

func joinPath(dir, rel string) string {
	if dir == "" {
		return rel
	}
	return dir + "/" + rel
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// --- values ---------------------------------------------------------------------------------------------------

// resourceRef is a resource symbol; runtimeRef a path into what only exists once it is deployed.
type resourceRef struct {
	s *Scope
	d *Decl
}

type runtimeRef struct {
	typ, name, path string
}

type moduleRef struct {
	s    *Scope
	name string
}

type lambda struct {
	params []string
	body   node
	locals map[string]any
}

// resolved turns a leftover runtime reference into an error, so no placeholder leaks into a result.
func resolved(v any) (any, error) {
	switch x := v.(type) {
	case runtimeRef:
		return nil, fmt.Errorf("%w: %s %s has no value before deployment (add it to Env.Runtime)", ErrEval, x.typ+"/"+x.name, x.path)
	case resourceRef, moduleRef, lambda:
		return nil, fmt.Errorf("%w: a %T is not a value", ErrEval, v)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := resolved(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := resolved(e)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// --- syntax tree ----------------------------------------------------------------------------------------------

type node interface{}

type (
	litNode    struct{ v any }
	identNode  struct{ name string }
	interpNode struct{ parts []node } // string parts are litNode strings
	arrayNode  struct{ items []node }
	objectNode struct {
		keys []string
		vals []node
	}
	unaryNode struct {
		op string
		x  node
	}
	binaryNode struct {
		op   string
		l, r node
	}
	ternaryNode struct{ c, t, f node }
	memberNode  struct {
		x    node
		name string
		safe bool
	}
	indexNode struct {
		x, i node
		safe bool
	}
	callNode struct {
		ns, name string
		args     []node
	}
	lambdaNode struct {
		params []string
		body   node
	}
)

// --- tokens ---------------------------------------------------------------------------------------------------

type token struct {
	kind string // ident, int, string, punct, eof
	text string
	str  []node // string: parts (litNode / parsed interpolations)
	nl   bool   // a newline precedes the token
}

type lexer struct {
	src  string
	i    int
	toks []token
}

func tokenize(src string) ([]token, error) {
	lx := &lexer{src: src}
	for {
		nl, err := lx.space()
		if err != nil {
			return nil, err
		}
		if lx.i >= len(src) {
			lx.toks = append(lx.toks, token{kind: "eof", nl: nl})
			return lx.toks, nil
		}
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		t.nl = nl
		lx.toks = append(lx.toks, t)
	}
}

// space skips whitespace and comments and reports whether a newline was among them.
func (lx *lexer) space() (bool, error) {
	src, nl := lx.src, false
	for lx.i < len(src) {
		switch c := src[lx.i]; {
		case c == '\n':
			nl = true
			lx.i++
		case c == ' ' || c == '\t' || c == '\r':
			lx.i++
		case strings.HasPrefix(src[lx.i:], "//"):
			for lx.i < len(src) && src[lx.i] != '\n' {
				lx.i++
			}
		case strings.HasPrefix(src[lx.i:], "/*"):
			end := strings.Index(src[lx.i+2:], "*/")
			if end < 0 {
				return nl, errors.New("unterminated comment")
			}
			nl = nl || strings.Contains(src[lx.i:lx.i+2+end], "\n")
			lx.i += 2 + end + 2
		default:
			return nl, nil
		}
	}
	return nl, nil
}

func (lx *lexer) next() (token, error) {
	src, i := lx.src, lx.i
	c := src[i]
	switch {
	case isIdentStart(c):
		j := i + 1
		for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j])) {
			j++
		}
		lx.i = j
		return token{kind: "ident", text: src[i:j]}, nil
	case isDigit(c):
		j := i + 1
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		lx.i = j
		return token{kind: "int", text: src[i:j]}, nil
	case strings.HasPrefix(src[i:], "'''"):
		end := strings.Index(src[i+3:], "'''")
		if end < 0 {
			return token{}, errors.New("unterminated multi-line string")
		}
		lx.i = i + 3 + end + 3
		return token{kind: "string", str: []node{litNode{src[i+3 : i+3+end]}}}, nil
	case c == '\'':
		return lx.str()
	}
	for _, p := range []string{"=>", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "??", ".?", "[?"} {
		if strings.HasPrefix(src[i:], p) {
			lx.i = i + len(p)
			return token{kind: "punct", text: p}, nil
		}
	}
	if strings.ContainsRune("()[]{}.,:?!<>+-*/%", rune(c)) {
		lx.i = i + 1
		return token{kind: "punct", text: string(c)}, nil
	}
	return token{}, fmt.Errorf("unexpected character %q", c)
}

// str reads a single-quoted string with escapes and ${...} interpolations.
func (lx *lexer) str() (token, error) {
	src := lx.src
	var parts []node
	var b strings.Builder
	i := lx.i + 1
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			switch e := src[i+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\\', '\'', '$':
				b.WriteByte(e)
			default:
				return token{}, fmt.Errorf("unknown escape \\%c", e)
			}
			i += 2
		case c == '\'':
			if b.Len() > 0 || len(parts) == 0 {
				parts = append(parts, litNode{b.String()})
			}
			lx.i = i + 1
			return token{kind: "string", str: parts}, nil
		case strings.HasPrefix(src[i:], "${"):
			if b.Len() > 0 {
				parts = append(parts, litNode{b.String()})
				b.Reset()
			}
			end, err := interpEnd(src, i+2)
			if err != nil {
				return token{}, err
			}
			inner, err := parseExpr(src[i+2 : end])
			if err != nil {
				return token{}, fmt.Errorf("in ${...}: %w", err)
			}
			parts = append(parts, inner)
			i = end + 1
		case c == '\n':
			return token{}, errors.New("unterminated string")
		default:
			b.WriteByte(c)
			i++
		}
	}
	return token{}, errors.New("unterminated string")
}

// interpEnd returns the index of the '}' closing an interpolation whose expression starts at from.
func interpEnd(src string, from int) (int, error) {
	depth := 0
	for i := from; i < len(src); i++ {
		switch src[i] {
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i, nil
			}
			depth--
		case '\'':
			// skip a nested string, its own interpolations included
			sub := &lexer{src: src, i: i}
			if _, err := sub.str(); err != nil {
				return 0, err
			}
			i = sub.i - 1
		}
	}
	return 0, errors.New("unterminated ${")
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }

// --- parser ---------------------------------------------------------------------------------------------------

type parser struct {
	toks []token
	pos  int
}

func parseExpr(src string) (node, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != "eof" {
		return nil, fmt.Errorf("unexpected %q after the expression", t.text)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) advance() token {
	t := p.toks[p.pos]
	if t.kind != "eof" {
		p.pos++
	}
	return t
}
func (p *parser) is(text string) bool { t := p.peek(); return t.kind == "punct" && t.text == text }
func (p *parser) expect(text string) error {
	if !p.is(text) {
		return fmt.Errorf("expected %q, found %q", text, p.peek().text)
	}
	p.advance()
	return nil
}

func (p *parser) expr() (node, error) {
	if n, ok, err := p.tryLambda(); ok || err != nil {
		return n, err
	}
	c, err := p.binary(0)
	if err != nil {
		return nil, err
	}
	if !p.is("?") {
		return c, nil
	}
	p.advance()
	t, err := p.expr()
	if err != nil {
		return nil, err
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	f, err := p.expr()
	if err != nil {
		return nil, err
	}
	return ternaryNode{c, t, f}, nil
}

// tryLambda parses "x => e" or "(a, b) => e" when the tokens ahead have that shape.
func (p *parser) tryLambda() (node, bool, error) {
	at := func(j int) token { return p.toks[min(j, len(p.toks)-1)] }
	punct := func(j int, text string) bool { t := at(j); return t.kind == "punct" && t.text == text }
	var params []string
	j := p.pos
	switch {
	case at(j).kind == "ident" && punct(j+1, "=>"):
		params, j = []string{at(j).text}, j+2
	case punct(j, "("):
		j++
		for at(j).kind == "ident" {
			params = append(params, at(j).text)
			j++
			if punct(j, ",") {
				j++
			}
		}
		if !punct(j, ")") || !punct(j+1, "=>") {
			return nil, false, nil
		}
		j += 2
	default:
		return nil, false, nil
	}
	p.pos = j
	body, err := p.expr()
	if err != nil {
		return nil, true, err
	}
	return lambdaNode{params, body}, true, nil
}

var precedence = map[string]int{
	"??": 1, "||": 2, "&&": 3,
	"==": 4, "!=": 4, "=~": 4, "!~": 4,
	"<": 5, "<=": 5, ">": 5, ">=": 5,
	"+": 6, "-": 6,
	"*": 7, "/": 7, "%": 7,
}

func (p *parser) binary(min int) (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec, ok := precedence[t.text]
		if t.kind != "punct" || !ok || prec <= min {
			return l, nil
		}
		p.advance()
		r, err := p.binary(prec)
		if err != nil {
			return nil, err
		}
		l = binaryNode{t.text, l, r}
	}
}

func (p *parser) unary() (node, error) {
	if p.is("!") || p.is("-") {
		op := p.advance().text
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return unaryNode{op, x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, error) {
	n, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.is(".") || p.is(".?"):
			safe := p.advance().text == ".?"
			t := p.advance()
			if t.kind != "ident" {
				return nil, fmt.Errorf("expected a property name after '.', found %q", t.text)
			}
			if p.is("(") { // namespaced call: sys.toLower(...)
				id, ok := n.(identNode)
				if !ok {
					return nil, fmt.Errorf("method calls are not supported (.%s)", t.text)
				}
				args, err := p.args()
				if err != nil {
					return nil, err
				}
				n = callNode{ns: id.name, name: t.text, args: args}
				continue
			}
			n = memberNode{n, t.text, safe}
		case p.is("[") || p.is("[?"):
			safe := p.advance().text == "[?"
			i, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n = indexNode{n, i, safe}
		default:
			return n, nil
		}
	}
}

func (p *parser) args() ([]node, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var out []node
	for !p.is(")") {
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		if p.is(",") {
			p.advance()
		} else if !p.is(")") {
			return nil, fmt.Errorf("expected ',' or ')' in arguments, found %q", p.peek().text)
		}
	}
	p.advance()
	return out, nil
}

func (p *parser) primary() (node, error) {
	t := p.peek()
	switch {
	case t.kind == "int":
		p.advance()
		n, err := strconv.Atoi(t.text)
		if err != nil {
			return nil, err
		}
		return litNode{n}, nil
	case t.kind == "string":
		p.advance()
		if len(t.str) == 1 {
			if l, ok := t.str[0].(litNode); ok {
				return l, nil
			}
		}
		return interpNode{t.str}, nil
	case t.kind == "ident":
		p.advance()
		switch t.text {
		case "true":
			return litNode{true}, nil
		case "false":
			return litNode{false}, nil
		case "null":
			return litNode{nil}, nil
		}
		if p.is("(") {
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			return callNode{name: t.text, args: args}, nil
		}
		return identNode{t.text}, nil
	case t.kind == "punct" && t.text == "(":
		p.advance()
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	case t.kind == "punct" && t.text == "[":
		p.advance()
		var items []node
		for !p.is("]") {
			if p.is(",") {
				p.advance()
				continue
			}
			it, err := p.expr()
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		p.advance()
		return arrayNode{items}, nil
	case t.kind == "punct" && t.text == "{":
		p.advance()
		var o objectNode
		for !p.is("}") {
			if p.is(",") {
				p.advance()
				continue
			}
			k := p.advance()
			var key string
			switch {
			case k.kind == "ident":
				key = k.text
			case k.kind == "string" && len(k.str) == 1:
				l, ok := k.str[0].(litNode)
				if !ok {
					return nil, errors.New("interpolated object keys are not supported")
				}
				key = l.v.(string)
			default:
				return nil, fmt.Errorf("bad object key %q", k.text)
			}
			if err := p.expect(":"); err != nil {
				return nil, err
			}
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			o.keys, o.vals = append(o.keys, key), append(o.vals, v)
		}
		p.advance()
		return o, nil
	}
	return nil, fmt.Errorf("unexpected %q", t.text)
}

// --- evaluation -----------------------------------------------------------------------------------------------

func (s *Scope) eval(n node, locals map[string]any) (any, error) {
	switch n := n.(type) {
	case litNode:
		return n.v, nil
	case identNode:
		return s.lookup(n.name, locals)
	case interpNode:
		var b strings.Builder
		for _, part := range n.parts {
			v, err := s.value(part, locals)
			if err != nil {
				return nil, err
			}
			str, err := toString(v)
			if err != nil {
				return nil, err
			}
			b.WriteString(str)
		}
		return b.String(), nil
	case arrayNode:
		out := make([]any, len(n.items))
		for i, it := range n.items {
			v, err := s.eval(it, locals)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case objectNode:
		out := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v, err := s.eval(n.vals[i], locals)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = v
		}
		return out, nil
	case unaryNode:
		x, err := s.value(n.x, locals)
		if err != nil {
			return nil, err
		}
		switch n.op {
		case "!":
			b, ok := x.(bool)
			if !ok {
				return nil, fmt.Errorf("%w: ! applied to %T", ErrEval, x)
			}
			return !b, nil
		default:
			i, ok := x.(int)
			if !ok {
				return nil, fmt.Errorf("%w: - applied to %T", ErrEval, x)
			}
			return -i, nil
		}
	case binaryNode:
		return s.binary(n, locals)
	case ternaryNode:
		c, err := s.value(n.c, locals)
		if err != nil {
			return nil, err
		}
		b, ok := c.(bool)
		if !ok {
			return nil, fmt.Errorf("%w: condition is %T, not bool", ErrEval, c)
		}
		if b {
			return s.eval(n.t, locals)
		}
		return s.eval(n.f, locals)
	case memberNode:
		x, err := s.eval(n.x, locals)
		if err != nil {
			return nil, err
		}
		return s.member(x, n.name, n.safe)
	case indexNode:
		x, err := s.value(n.x, locals)
		if err != nil {
			return nil, err
		}
		i, err := s.value(n.i, locals)
		if err != nil {
			return nil, err
		}
		return index(x, i, n.safe)
	case callNode:
		return s.call(n, locals)
	case lambdaNode:
		return lambda{params: n.params, body: n.body, locals: locals}, nil
	}
	return nil, fmt.Errorf("%w: unknown node %T", ErrEval, n)
}

// value evaluates n and requires a plain value (no symbol reference or pending runtime property).
func (s *Scope) value(n node, locals map[string]any) (any, error) {
	v, err := s.eval(n, locals)
	if err != nil {
		return nil, err
	}
	switch v.(type) {
	case runtimeRef, resourceRef, moduleRef:
		return resolved(v)
	}
	return v, nil
}

func (s *Scope) lookup(name string, locals map[string]any) (any, error) {
	if v, ok := locals[name]; ok {
		return v, nil
	}
	if _, ok := s.params[name]; ok {
		return s.params[name], nil
	}
	if s.tpl.Get("var", name) != nil {
		return s.Var(name)
	}
	if d := s.tpl.Get("resource", name); d != nil {
		return resourceRef{s, d}, nil
	}
	if s.tpl.Get("module", name) != nil {
		return moduleRef{s, name}, nil
	}
	return nil, fmt.Errorf("%w: %s: unknown symbol %s", ErrEval, s.tpl.Path, name)
}

func (s *Scope) member(x any, name string, safe bool) (any, error) {
	switch x := x.(type) {
	case map[string]any:
		v, ok := x[name]
		if !ok {
			if safe {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: object has no property %s", ErrEval, name)
		}
		return v, nil
	case nil:
		if safe {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: .%s of null", ErrEval, name)
	case resourceRef:
		typ, _, _ := strings.Cut(x.d.Type, "@")
		resName, err := x.s.ResourceProp(x.d.Name, "name")
		if err != nil {
			return nil, err
		}
		switch name {
		case "name":
			return resName, nil
		case "id":
			return fmt.Sprintf("%v/providers/%s/%v", x.s.env.ResourceGroup["id"], typ, resName), nil
		}
		return s.runtime(runtimeRef{typ, fmt.Sprint(resName), name})
	case runtimeRef:
		return s.runtime(runtimeRef{x.typ, x.name, x.path + "." + name})
	case moduleRef:
		if name != "outputs" {
			return nil, fmt.Errorf("%w: module %s.%s", ErrEval, x.name, name)
		}
		return moduleOutputs{x}, nil
	case moduleOutputs:
		sub, err := x.s.Module(x.name)
		if err != nil {
			return nil, err
		}
		return sub.Output(name)
	}
	return nil, fmt.Errorf("%w: .%s of %T", ErrEval, name, x)
}

type moduleOutputs struct{ moduleRef }

// runtime resolves a deployed resource's property through Env.Runtime; an unknown path stays a reference
// (deeper member access may still resolve it) and becomes an error when used as a value.
func (s *Scope) runtime(r runtimeRef) (any, error) {
	if s.env.Runtime != nil {
		if v, ok := s.env.Runtime(r.typ, r.name, r.path); ok {
			return v, nil
		}
	}
	return r, nil
}

func index(x, i any, safe bool) (any, error) {
	switch x := x.(type) {
	case []any:
		n, ok := i.(int)
		if !ok {
			return nil, fmt.Errorf("%w: array index %T", ErrEval, i)
		}
		if n < 0 || n >= len(x) {
			if safe {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: index %d out of range (%d items)", ErrEval, n, len(x))
		}
		return x[n], nil
	case map[string]any:
		k, ok := i.(string)
		if !ok {
			return nil, fmt.Errorf("%w: object index %T", ErrEval, i)
		}
		v, found := x[k]
		if !found && !safe {
			return nil, fmt.Errorf("%w: object has no property %s", ErrEval, k)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%w: cannot index %T", ErrEval, x)
}

func (s *Scope) binary(n binaryNode, locals map[string]any) (any, error) {
	l, err := s.value(n.l, locals)
	if err != nil {
		return nil, err
	}
	switch n.op { // short-circuit operators
	case "&&", "||":
		lb, ok := l.(bool)
		if !ok {
			return nil, fmt.Errorf("%w: %s on %T", ErrEval, n.op, l)
		}
		if (n.op == "&&") != lb {
			return lb, nil
		}
		r, err := s.value(n.r, locals)
		if err != nil {
			return nil, err
		}
		rb, ok := r.(bool)
		if !ok {
			return nil, fmt.Errorf("%w: %s on %T", ErrEval, n.op, r)
		}
		return rb, nil
	case "??":
		if l != nil {
			return l, nil
		}
		return s.value(n.r, locals)
	}
	r, err := s.value(n.r, locals)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "=~", "!~":
		ls, lok := l.(string)
		rs, rok := r.(string)
		if !lok || !rok {
			return nil, fmt.Errorf("%w: %s on %T and %T", ErrEval, n.op, l, r)
		}
		return strings.EqualFold(ls, rs) == (n.op == "=~"), nil
	}
	li, lok := l.(int)
	ri, rok := r.(int)
	if !lok || !rok {
		return nil, fmt.Errorf("%w: %s on %T and %T (Bicep has no string +; use interpolation)", ErrEval, n.op, l, r)
	}
	switch n.op {
	case "+":
		return li + ri, nil
	case "-":
		return li - ri, nil
	case "*":
		return li * ri, nil
	case "/", "%":
		if ri == 0 {
			return nil, fmt.Errorf("%w: division by zero", ErrEval)
		}
		if n.op == "/" {
			return li / ri, nil
		}
		return li % ri, nil
	case "<":
		return li < ri, nil
	case "<=":
		return li <= ri, nil
	case ">":
		return li > ri, nil
	case ">=":
		return li >= ri, nil
	}
	return nil, fmt.Errorf("%w: operator %s", ErrEval, n.op)
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equal)
	case map[string]any:
		y, ok := b.(map[string]any)
		return ok && maps.EqualFunc(x, y, equal)
	}
	return a == b
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%w: cannot interpolate %T", ErrEval, v)
}

// apply calls a lambda value with args.
func (s *Scope) apply(f any, args ...any) (any, error) {
	l, ok := f.(lambda)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not a lambda", ErrEval, f)
	}
	if len(l.params) > len(args) {
		return nil, fmt.Errorf("%w: lambda takes %d arguments, got %d", ErrEval, len(l.params), len(args))
	}
	locals := maps.Clone(l.locals)
	if locals == nil {
		locals = map[string]any{}
	}
	for i, p := range l.params {
		locals[p] = args[i]
	}
	return s.value(l.body, locals)
}

func (s *Scope) call(n callNode, locals map[string]any) (any, error) {
	if n.ns != "" && n.ns != "sys" {
		return nil, fmt.Errorf("%w: function %s.%s", ErrEval, n.ns, n.name)
	}
	args := make([]any, len(n.args))
	for i, a := range n.args {
		v, err := s.value(a, locals)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	v, err := s.callFunction(strings.ToLower(n.name), args)
	if err != nil {
		return nil, fmt.Errorf("%s(): %w", n.name, err)
	}
	return v, nil
}

// arity is the number of arguments each supported function takes (min, max; -1 for any).
var arity = map[string][2]int{
	"resourcegroup": {0, 0}, "environment": {0, 0}, "tolower": {1, 1}, "toupper": {1, 1}, "trim": {1, 1},
	"string": {1, 1}, "int": {1, 1}, "length": {1, 1}, "empty": {1, 1}, "take": {2, 2}, "skip": {2, 2},
	"substring": {2, 3}, "contains": {2, 2}, "startswith": {2, 2}, "endswith": {2, 2}, "replace": {3, 3},
	"split": {2, 2}, "join": {2, 2}, "padleft": {2, 3}, "min": {1, -1}, "max": {1, -1}, "union": {1, -1},
	"concat": {0, -1}, "uniquestring": {1, -1}, "range": {2, 2}, "map": {2, 2}, "filter": {2, 2}, "reduce": {3, 3},
	"items": {1, 1}, "last": {1, 1},
}

// typedArgs reads a call's arguments by type; the first mismatch is kept in err and later reads return zero
// values, so a function body reads what it needs and checks err once.
type typedArgs struct {
	v   []any
	err error
}

func (a *typedArgs) fail(i int, want string) {
	if a.err == nil {
		a.err = fmt.Errorf("%w: argument %d is %T, not %s", ErrEval, i+1, a.v[i], want)
	}
}

func (a *typedArgs) str(i int) string {
	v, ok := a.v[i].(string)
	if !ok {
		a.fail(i, "string")
	}
	return v
}

func (a *typedArgs) num(i int) int {
	v, ok := a.v[i].(int)
	if !ok {
		a.fail(i, "int")
	}
	return v
}

func (a *typedArgs) arr(i int) []any {
	v, ok := a.v[i].([]any)
	if !ok {
		a.fail(i, "array")
	}
	return v
}

func (s *Scope) callFunction(name string, args []any) (any, error) {
	n, ok := arity[name]
	if !ok {
		return nil, fmt.Errorf("%w: function %s is not supported by the evaluator", ErrEval, name)
	}
	if len(args) < n[0] || (n[1] >= 0 && len(args) > n[1]) {
		return nil, fmt.Errorf("%w: %d arguments", ErrEval, len(args))
	}
	a := &typedArgs{v: args}
	v, err := s.callTyped(name, a)
	if a.err != nil {
		return nil, a.err
	}
	return v, err
}

// callTyped evaluates a supported function whose arity has been checked.
func (s *Scope) callTyped(name string, a *typedArgs) (any, error) {
	args := a.v
	switch name {
	case "resourcegroup":
		return s.env.ResourceGroup, nil
	case "environment":
		return s.env.Environment, nil
	case "tolower":
		return strings.ToLower(a.str(0)), nil
	case "toupper":
		return strings.ToUpper(a.str(0)), nil
	case "trim":
		return strings.TrimSpace(a.str(0)), nil
	case "string":
		return toString(args[0])
	case "int":
		if v, ok := args[0].(int); ok {
			return v, nil
		}
		return strconv.Atoi(a.str(0))
	case "length", "empty":
		n := -1
		switch x := args[0].(type) {
		case string:
			n = len([]rune(x))
		case []any:
			n = len(x)
		case map[string]any:
			n = len(x)
		case nil:
			n = 0
		}
		if n < 0 {
			return nil, fmt.Errorf("%w: %s of %T", ErrEval, name, args[0])
		}
		if name == "empty" {
			return n == 0, nil
		}
		return n, nil
	case "take", "skip":
		k := a.num(1)
		cut := func(n int) (int, int) {
			k := max(0, min(k, n))
			if name == "take" {
				return 0, k
			}
			return k, n
		}
		switch x := args[0].(type) {
		case string:
			r := []rune(x)
			from, to := cut(len(r))
			return string(r[from:to]), nil
		case []any:
			from, to := cut(len(x))
			return slices.Clone(x[from:to]), nil
		}
		return nil, fmt.Errorf("%w: %s of %T", ErrEval, name, args[0])
	case "substring":
		r := []rune(a.str(0))
		from := a.num(1)
		n := len(r) - from
		if len(args) == 3 {
			n = a.num(2)
		}
		if a.err == nil && (from < 0 || n < 0 || from+n > len(r)) {
			return nil, fmt.Errorf("%w: substring(%q, %d, %d) out of range", ErrEval, string(r), from, n)
		}
		if a.err != nil {
			return nil, nil
		}
		return string(r[from : from+n]), nil
	case "contains":
		switch x := args[0].(type) {
		case string:
			return strings.Contains(x, a.str(1)), nil
		case []any:
			return slices.ContainsFunc(x, func(e any) bool { return equal(e, args[1]) }), nil
		case map[string]any:
			_, ok := x[a.str(1)]
			return ok, nil
		}
		return nil, fmt.Errorf("%w: contains on %T", ErrEval, args[0])
	case "startswith", "endswith":
		x, y := strings.ToLower(a.str(0)), strings.ToLower(a.str(1)) // Bicep compares case-insensitively
		if name == "startswith" {
			return strings.HasPrefix(x, y), nil
		}
		return strings.HasSuffix(x, y), nil
	case "replace":
		return strings.ReplaceAll(a.str(0), a.str(1), a.str(2)), nil
	case "items": // ARM's items(): {key, value} objects in alphabetical order of the keys
		obj, ok := args[0].(map[string]any)
		if !ok {
			a.fail(0, "object")
			return nil, nil
		}
		out := make([]any, 0, len(obj))
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			out = append(out, map[string]any{"key": k, "value": obj[k]})
		}
		return out, nil
	case "last":
		switch x := args[0].(type) {
		case []any:
			if len(x) == 0 {
				return nil, nil
			}
			return x[len(x)-1], nil
		case string:
			if x == "" {
				return "", nil
			}
			r := []rune(x)
			return string(r[len(r)-1]), nil
		}
		a.fail(0, "array or string")
		return nil, nil
	case "split":
		var out []any
		for _, p := range strings.Split(a.str(0), a.str(1)) {
			out = append(out, p)
		}
		return out, nil
	case "join":
		items := a.arr(0)
		parts := make([]string, len(items))
		for i, e := range items {
			var err error
			if parts[i], err = toString(e); err != nil {
				return nil, err
			}
		}
		return strings.Join(parts, a.str(1)), nil
	case "padleft":
		v, err := toString(args[0])
		if err != nil {
			return nil, err
		}
		width, pad := a.num(1), " "
		if len(args) == 3 {
			if pad = a.str(2); len(pad) != 1 {
				return nil, fmt.Errorf("%w: padLeft needs one padding character", ErrEval)
			}
		}
		for len(v) < width {
			v = pad + v
		}
		return v, nil
	case "min", "max":
		if len(args) == 1 {
			a = &typedArgs{v: a.arr(0), err: a.err}
		}
		if len(a.v) == 0 {
			return nil, fmt.Errorf("%w: %s of nothing", ErrEval, name)
		}
		best := a.num(0)
		for i := 1; i < len(a.v); i++ {
			if v := a.num(i); (name == "min") == (v < best) {
				best = v
			}
		}
		return best, a.err
	case "union":
		out := map[string]any{}
		for i := range args {
			m, ok := args[i].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: union of %T (only objects are supported)", ErrEval, args[i])
			}
			maps.Copy(out, m) // the last value wins, as in Bicep (shallow: nested objects are replaced here)
		}
		return out, nil
	case "concat":
		if len(args) > 0 {
			if _, ok := args[0].([]any); ok {
				var out []any
				for i := range args {
					out = append(out, a.arr(i)...)
				}
				return out, nil
			}
		}
		var b strings.Builder
		for _, x := range args {
			v, err := toString(x)
			if err != nil {
				return nil, err
			}
			b.WriteString(v)
		}
		return b.String(), nil
	case "uniquestring":
		// Deterministic like the real function (13 lower-case base-32 characters), not the same hash.
		h := fnv.New64a()
		for _, x := range args {
			v, err := toString(x)
			if err != nil {
				return nil, err
			}
			h.Write([]byte(v + "\x00"))
		}
		const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
		sum := h.Sum64()
		out := make([]byte, 13)
		for i := range out {
			out[i] = alphabet[sum%32]
			sum /= 32
			if sum == 0 {
				sum = h.Sum64() ^ uint64(i+1)*0x9e3779b97f4a7c15
			}
		}
		return string(out), nil
	case "range":
		from, count := a.num(0), a.num(1)
		out := make([]any, 0, max(count, 0))
		for i := range count {
			out = append(out, from+i)
		}
		return out, nil
	case "map", "filter":
		var out []any
		for i, e := range a.arr(0) {
			r, err := s.apply(args[1], e, i)
			if err != nil {
				return nil, err
			}
			if name == "map" {
				out = append(out, r)
			} else if keep, ok := r.(bool); !ok {
				return nil, fmt.Errorf("%w: filter predicate returned %T", ErrEval, r)
			} else if keep {
				out = append(out, e)
			}
		}
		return out, nil
	case "reduce":
		acc := args[1]
		for i, e := range a.arr(0) {
			var err error
			if acc, err = s.apply(args[2], acc, e, i); err != nil {
				return nil, err
			}
		}
		return acc, nil
	}
	return nil, fmt.Errorf("%w: function %s is not supported by the evaluator", ErrEval, name)
}

// checkParamValue checks a bound parameter value against the declaration's type and constraint decorators.
func checkParamValue(p *Decl, v any) error {
	switch p.Type {
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%T value for a string parameter", v)
		}
	case "int":
		if _, ok := v.(int); !ok {
			return fmt.Errorf("%T value for an int parameter", v)
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%T value for a bool parameter", v)
		}
	case "object":
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("%T value for an object parameter", v)
		}
	}
	if d := p.Decorator("allowed"); d != nil {
		items, err := d.Args.Items()
		if err != nil {
			return err
		}
		ok := false
		for _, it := range items {
			if lit, isLit := it.Literal(); isLit && lit == v {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("%v is not in @allowed", v)
		}
	}
	bound := func(name string) (int, bool) {
		d := p.Decorator(name)
		if d == nil {
			return 0, false
		}
		n, err := strconv.Atoi(d.Args.Text)
		return n, err == nil
	}
	switch x := v.(type) {
	case int:
		if lo, ok := bound("minValue"); ok && x < lo {
			return fmt.Errorf("%d is below @minValue(%d)", x, lo)
		}
		if hi, ok := bound("maxValue"); ok && x > hi {
			return fmt.Errorf("%d is above @maxValue(%d)", x, hi)
		}
	case string:
		n := len([]rune(x))
		if lo, ok := bound("minLength"); ok && n < lo {
			return fmt.Errorf("%q is shorter than @minLength(%d)", x, lo)
		}
		if hi, ok := bound("maxLength"); ok && n > hi {
			return fmt.Errorf("%q is longer than @maxLength(%d)", x, hi)
		}
	}
	return nil
}
