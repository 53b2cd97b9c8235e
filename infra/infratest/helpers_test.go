package infratest

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the module root as seen from this package's directory (go test runs in the package directory).
const repoRoot = "../.."

func infraPath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot, "infra"}, parts...)...)
}

// load parses one template relative to infra/.
func load(t *testing.T, rel string) *Template {
	t.Helper()
	tpl, err := Parse(infraPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// allTemplates parses every .bicep file under infra/ (main and modules).
func allTemplates(t *testing.T) []*Template {
	t.Helper()
	files, err := filepath.Glob(infraPath("modules", "*.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{infraPath("main.bicep")}, files...)
	out := make([]*Template, 0, len(files))
	for _, f := range files {
		tpl, err := Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tpl)
	}
	if len(out) < 5 {
		t.Fatalf("found %d templates, want main.bicep and the modules", len(out))
	}
	return out
}

// mustDecl returns a declaration or fails the test.
func mustDecl(t *testing.T, tpl *Template, kind, name string) *Decl {
	t.Helper()
	d := tpl.Get(kind, name)
	if d == nil {
		t.Fatalf("%s: no %s %s", tpl.Path, kind, name)
	}
	return d
}

// mustProp returns the value at path in an object expression or fails the test.
func mustProp(t *testing.T, where string, obj Expr, path string) Expr {
	t.Helper()
	v, ok := obj.Prop(path)
	if !ok {
		t.Fatalf("%s: no property %s", where, path)
	}
	return v
}

// literal returns the literal value of e or fails the test.
func literal(t *testing.T, where string, e Expr) any {
	t.Helper()
	v, ok := e.Literal()
	if !ok {
		t.Fatalf("%s = %s, want a literal", where, e.Text)
	}
	return v
}

// intDecorator returns the integer argument of @name on d, and whether it is present.
func intDecorator(d *Decl, name string) (int, bool) {
	dec := d.Decorator(name)
	if dec == nil {
		return 0, false
	}
	v, ok := dec.Args.Literal()
	n, isInt := v.(int)
	return n, ok && isInt
}

// allowedValues returns the literal values of @allowed on d (nil when absent).
func allowedValues(d *Decl) ([]any, error) {
	dec := d.Decorator("allowed")
	if dec == nil {
		return nil, nil
	}
	items, err := dec.Args.Items()
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(items))
	for _, it := range items {
		v, ok := it.Literal()
		if !ok {
			return nil, fmt.Errorf("@allowed item %s is not a literal", it.Text)
		}
		out = append(out, v)
	}
	return out, nil
}

// checkValue reports whether a literal value satisfies the param's declared type and constraints.
func checkValue(p *Decl, v any) error {
	allowed, err := allowedValues(p)
	if err != nil {
		return err
	}
	if allowed != nil && !slices.Contains(allowed, v) {
		return fmt.Errorf("value %v is not in @allowed %v", v, allowed)
	}
	switch x := v.(type) {
	case int:
		if p.Type != "" && p.Type != "int" {
			return fmt.Errorf("int value for a %s parameter", p.Type)
		}
		if lo, ok := intDecorator(p, "minValue"); ok && x < lo {
			return fmt.Errorf("value %d is below @minValue(%d)", x, lo)
		}
		if hi, ok := intDecorator(p, "maxValue"); ok && x > hi {
			return fmt.Errorf("value %d is above @maxValue(%d)", x, hi)
		}
	case string:
		if p.Type != "" && p.Type != "string" {
			return fmt.Errorf("string value for a %s parameter", p.Type)
		}
		if lo, ok := intDecorator(p, "minLength"); ok && len(x) < lo {
			return fmt.Errorf("value %q is shorter than @minLength(%d)", x, lo)
		}
		if hi, ok := intDecorator(p, "maxLength"); ok && len(x) > hi {
			return fmt.Errorf("value %q is longer than @maxLength(%d)", x, hi)
		}
	case bool:
		if p.Type != "" && p.Type != "bool" {
			return fmt.Errorf("bool value for a %s parameter", p.Type)
		}
	}
	return nil
}

// paramDefault returns the literal default of a main.bicep parameter or fails the test.
func paramDefault(t *testing.T, tpl *Template, name string) any {
	t.Helper()
	p := mustDecl(t, tpl, "param", name)
	return literal(t, tpl.Path+" param "+name+" default", p.Value)
}

// resolveParams follows an expression through the template's variables to the parameters it depends on.
func resolveParams(tpl *Template, e Expr) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(Expr)
	walk = func(e Expr) {
		for _, id := range e.Identifiers() {
			if seen[id] {
				continue
			}
			seen[id] = true
			if tpl.Get("param", id) != nil {
				out = append(out, id)
			} else if v := tpl.Get("var", id); v != nil {
				walk(v.Value)
			}
		}
	}
	walk(e)
	slices.Sort(out)
	return out
}

// resourceType strips the API version from a resource declaration's type.
func resourceType(d *Decl) string {
	typ, _, _ := strings.Cut(d.Type, "@")
	return typ
}

// bounds renders a parameter's type and constraint decorators (not its description) for comparison.
func bounds(p *Decl) string {
	var parts []string
	for _, d := range p.Decorators {
		if d.Name != "description" {
			parts = append(parts, "@"+d.Name+"("+d.Args.Normalized()+")")
		}
	}
	slices.Sort(parts)
	return p.Type + " " + strings.Join(parts, " ")
}

// Values the evaluator needs from a deployment (see Env): a resource group in public Azure, and the properties
// of created resources that the templates read.
const (
	testResourceGroupID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-holdfast"
	testClientID        = "11111111-1111-1111-1111-111111111111"
	testPrincipalID     = "22222222-2222-2222-2222-222222222222"
)

func testEnv() *Env {
	return &Env{
		ResourceGroup: map[string]any{"id": testResourceGroupID, "name": "rg-holdfast", "location": "westeurope"},
		Environment: map[string]any{"name": "AzureCloud", "suffixes": map[string]any{
			"storage": "core.windows.net", "acrLoginServer": ".azurecr.io", "keyvaultDns": ".vault.azure.net",
		}},
		Runtime: func(typ, name, path string) (any, bool) {
			switch typ + " " + path {
			case "Microsoft.ManagedIdentity/userAssignedIdentities properties.clientId":
				return testClientID, true
			case "Microsoft.ManagedIdentity/userAssignedIdentities properties.principalId":
				return testPrincipalID, true
			case "Microsoft.Insights/components properties.ConnectionString":
				return "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-0.in.applicationinsights.azure.com/", true
			case "Microsoft.ServiceBus/namespaces properties.serviceBusEndpoint":
				return "https://" + name + ".servicebus.windows.net:443/", true
			case "Microsoft.Web/sites properties.defaultHostName":
				return name + ".azurewebsites.net", true
			case "Microsoft.ContainerRegistry/registries properties.loginServer":
				return name + ".azurecr.io", true
			}
			return nil, false
		},
	}
}
