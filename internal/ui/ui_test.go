package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func serve(method, target string) *httptest.ResponseRecorder {
	e := echo.New()
	h := Handler()
	e.Any("/api/ui", h)
	e.Any("/api/ui/", h)
	e.Any("/api/ui/:asset", h)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// TestPageCarriesTheKeyAndAStrictPolicy: the page links its assets under its own path with the function key,
// escaped, and every answer has the CSP. Mutation: dropping the header makes this fail.
func TestPageCarriesTheKeyAndAStrictPolicy(t *testing.T) {
	rec := serve(http.MethodGet, `/api/ui?code=k%22%3E%3Cscript%3Ex`)
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(body, `src="/api/ui/app.js?code=k%22%3e%3cscript%3ex"`) || strings.Contains(body, "<script>x") {
		t.Fatalf("asset URLs not escaped with the key:\n%s", body)
	}
	if strings.Contains(body, "<style") || strings.Contains(body, "style=") || strings.Contains(body, "onclick") {
		t.Fatal("inline style or handler in the page")
	}
	for _, target := range []string{"/api/ui", "/api/ui/app.js", "/api/ui/app.css", "/api/ui/nope"} {
		rec := serve(http.MethodGet, target)
		if rec.Header().Get("Content-Security-Policy") != CSP || !strings.Contains(CSP, "script-src 'self'") || strings.Contains(CSP, "unsafe") {
			t.Errorf("%s: CSP %q", target, rec.Header().Get("Content-Security-Policy"))
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", target)
		}
	}
}

// TestAssetsAndRefusals: the script and style sheet come with their types; unknown files are 404, writes 405.
func TestAssetsAndRefusals(t *testing.T) {
	if rec := serve(http.MethodGet, "/api/ui/app.js"); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := serve(http.MethodGet, "/api/ui/app.css"); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("app.css: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := serve(http.MethodGet, "/api/ui/index.html"); rec.Code != 404 {
		t.Errorf("index.html as an asset: %d", rec.Code)
	}
	if rec := serve(http.MethodPost, "/api/ui"); rec.Code != 405 {
		t.Errorf("POST: %d", rec.Code)
	}
}

// TestScriptNeverWritesMarkup: the script builds the page with textContent only.
func TestScriptNeverWritesMarkup(t *testing.T) {
	b, err := assets.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// TestPolicyDirectives: the policy the page is served with allows nothing beyond its own origin: every fetch
// directive the page needs is 'self', everything else falls back to 'none', and base URIs, form posts and
// framing are refused. Mutations: widening or dropping any directive (e.g. no frame-ancestors, connect-src *,
// default-src 'self') makes this fail.
func TestPolicyDirectives(t *testing.T) {
	want := map[string]string{
		"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'", "img-src": "'self'",
		"base-uri": "'none'", "form-action": "'none'", "frame-ancestors": "'none'",
	}
	got := map[string]string{}
	for _, d := range strings.Split(serve(http.MethodGet, "/api/ui").Header().Get("Content-Security-Policy"), ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if name == "" {
			continue
		}
		if _, dup := got[name]; dup {
			t.Errorf("directive %s given twice", name)
		}
		got[name] = strings.TrimSpace(value)
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: %q, want %q", name, got[name], v)
		}
	}
	for name, v := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected directive %s %s", name, v)
		}
	}
}
