package devhost

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// serve starts the HTTP server on ln; the server goroutine is counted in h.loops and ends when
// Close shuts the server down.
func (h *Host) serve(ln net.Listener) {
	target, _ := url.Parse(h.HandlerURL())
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target) // same path and query; no X-Forwarded-* headers are added
			pr.Out.Host = pr.In.Host
			setHostHeaders(pr.Out.Header, pr.In.Header.Get("X-Azure-Functions-InvocationId"))
			if pr.In.ContentLength <= 0 {
				// The host copies the body only when the client sent Content-Length > 0.
				pr.Out.Body, pr.Out.ContentLength = http.NoBody, 0
				pr.Out.Header.Del("Transfer-Encoding")
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.log.Error("forwarding to handler failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeJSONError(w, http.StatusBadGateway, "forwarding to the custom handler failed: "+err.Error())
		},
		Transport: h.client.Transport,
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.route(w, r, proxy) }),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	h.loops.Add(1)
	go func() {
		defer h.loops.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("HTTP server stopped", "err", err)
		}
	}()
	h.log.Info("listening", "addr", ln.Addr().String())
}

// route dispatches one request: the admin endpoint, a forwarded HTTP function, or 404.
func (h *Host) route(w http.ResponseWriter, r *http.Request, proxy *httputil.ReverseProxy) {
	if name, ok := strings.CutPrefix(r.URL.Path, "/admin/functions/"); ok {
		h.admin(w, r, name)
		return
	}
	f := h.matchHTTP(r.Method, r.URL.EscapedPath())
	if f == nil {
		writeJSONError(w, http.StatusNotFound, "no function matches "+r.Method+" "+r.URL.Path)
		return
	}
	if !f.forward {
		writeJSONError(w, http.StatusNotImplemented, "function "+f.name+
			": only forwarded HTTP functions (customHandler.enableForwardingHttpRequest with one httpTrigger and one http output) are supported by the dev host")
		return
	}
	id := newGUID()
	r.Header.Set("X-Azure-Functions-InvocationId", id) // read back by Rewrite
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	proxy.ServeHTTP(rec, r)
	h.log.Info("http function", "function", f.name, "invocationId", id, "method", r.Method,
		"path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
}

// matchHTTP returns the first HTTP function whose route and methods accept the request, in
// function-name order.
func (h *Host) matchHTTP(method, path string) *httpFunc {
	for _, f := range h.app.https {
		if _, ok := f.route.match(path); !ok {
			continue
		}
		if len(f.methods) > 0 && !f.methods[method] {
			continue
		}
		return f
	}
	return nil
}

// admin serves POST /admin/functions/<name> with body {"input":"…"}: it starts the timer function
// and answers 202 at once, as the host does. The invocation waits for a running one of the same
// function (no overlap).
func (h *Host) admin(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "use POST /admin/functions/<name> with body {\"input\":\"\"}")
		return
	}
	ts, ok := h.timers[lower(name)]
	if !ok {
		writeJSONError(w, http.StatusNotFound, "no timer function named "+name)
		return
	}
	var body struct {
		Input *string `json:"input"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		writeJSONError(w, http.StatusBadRequest, "body must be JSON like {\"input\":\"\"}: "+err.Error())
		return
	}
	if !h.beginInvocation() {
		writeJSONError(w, http.StatusServiceUnavailable, "the host is shutting down")
		return
	}
	go func() {
		defer h.invocations.Done()
		h.invokeTimer(h.invCtx, ts, TriggerAdmin)
	}()
	w.WriteHeader(http.StatusAccepted)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
