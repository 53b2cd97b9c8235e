package devhost

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
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

// AdminResult is the dev host's answer to POST /admin/functions/<name>?wait=true: the invocation's
// outcome once it finished. The Functions host has no such mode (it answers 202 at once); the dev
// host adds it so that `make demo` can wait for the run and report it.
type AdminResult struct {
	Function     string          `json:"function"`
	InvocationID string          `json:"invocationId"`
	Status       int             `json:"status"` // the handler's HTTP status; 0 if it did not answer
	DurationMs   int64           `json:"durationMs"`
	ReturnValue  json.RawMessage `json:"returnValue"`
	Logs         []string        `json:"logs"`
	Error        string          `json:"error,omitempty"` // set when the invocation failed
}

// admin serves POST /admin/functions/<name> with body {"input":"…"}: it starts the timer function
// and answers 202 at once, as the host does. With ?wait=true (dev host only) it answers when the
// invocation has finished: 200 with an AdminResult, or 502 with one whose error says why it
// failed. The invocation waits for a running one of the same function (no overlap); it is owned by
// the host and goes on if the caller disconnects.
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
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "wait must be true or false, got "+strconv.Quote(v))
			return
		}
		wait = b
	}
	if !h.beginInvocation() {
		writeJSONError(w, http.StatusServiceUnavailable, "the host is shutting down")
		return
	}
	done := make(chan InvocationResult, 1)
	go func() {
		defer h.invocations.Done()
		done <- h.invokeTimer(h.invCtx, ts, TriggerAdmin)
	}()
	if !wait {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	select {
	case res := <-done:
		out := AdminResult{Function: res.Function, InvocationID: res.InvocationID, Status: res.StatusCode,
			DurationMs: res.Duration.Milliseconds(), ReturnValue: res.ReturnValue, Logs: res.Logs}
		if len(out.ReturnValue) == 0 {
			out.ReturnValue = json.RawMessage("null")
		}
		status := http.StatusOK
		if res.Err != nil {
			out.Error, status = res.Err.Error(), http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	case <-r.Context().Done(): // the caller left; the invocation goes on
	}
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
