// Package ui serves the operator page at /api/ui: deferred and dead-lettered messages in a table, their
// bodies and properties, and resubmit / delete / dead-letter actions that call the drain APIs. The page's
// script and style sheet are embedded in the binary (no CDN) and served beside it at /api/ui/app.js and
// /api/ui/app.css.
//
// Message bodies and properties are untrusted: the script only ever puts them into the page with
// textContent, and every answer carries a Content-Security-Policy that allows scripts and styles from the
// page's own origin only (no inline script or style, no eval), no framing and no form posts.
//
// The page works behind a function key: the `code` query parameter it was opened with is added to its asset
// URLs here and to every API call by the script.
package ui

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

//go:embed assets/index.html assets/app.js assets/app.css assets/favicon.svg
var assets embed.FS

// CSP is the Content-Security-Policy of every answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

var static = map[string]string{
	"app.js":      "text/javascript; charset=utf-8",
	"app.css":     "text/css; charset=utf-8",
	"favicon.svg": "image/svg+xml",
}

// Handler serves GET (and HEAD) /api/ui, /api/ui/ and /api/ui/:asset. Anything else is 404 or 405, as
// JSON {"error":"…"} through the server's error handler.
func Handler() echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		h := c.Response().Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer") // the function key is in the URL
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			return echo.NewHTTPError(http.StatusMethodNotAllowed, "method "+req.Method+" is not allowed on "+req.URL.Path+"; use GET")
		}
		asset := c.Param("asset")
		if asset == "" {
			return servePage(c)
		}
		ct, ok := static[asset]
		if !ok {
			return echo.NewHTTPError(http.StatusNotFound, "no such file: "+asset)
		}
		b, err := assets.ReadFile("assets/" + asset)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, ct, b)
	}
}

// servePage renders index.html with asset URLs under the request's own path (the host's route prefix may
// differ from "api") carrying the request's function key.
func servePage(c echo.Context) error {
	req := c.Request()
	base := strings.TrimSuffix(req.URL.Path, "/")
	var buf bytes.Buffer
	err := page.Execute(&buf, struct{ Base, Code string }{Base: base, Code: req.URL.Query().Get("code")})
	if err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}
