// Package httpapi serves the custom handler's HTTP routes with echo: the ProcessQueue timer invocation, the
// forwarded /api/deferred drain routes and the host's readiness probe. Every 4xx/5xx answer is JSON
// {"error":"…"}.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/invoke"
	"github.com/holdfast-dev/holdfast/internal/process"
)

// Route names.
const (
	ProcessQueuePath   = "/ProcessQueue"           // timer function (envelope)
	DeferredPath       = "/api/deferred"           // GET: list (forwarded HTTP)
	DeferredActionPath = "/api/deferred/:action"   // POST: resubmit | delete | deadletter | reconcile
	DeferredPeekPath   = "/api/deferred/peek"      // GET ?sequenceNumber=: one message, peeked
	DeadLetterPath     = "/api/deadletter"         // GET: list the dead-letter queue
	DeadLetterAction   = "/api/deadletter/:action" // POST: resubmit | delete; GET peek
	UIPath             = "/api/ui"                 // GET: the operator page
	UIAssetPath        = "/api/ui/:asset"          // GET: its script and style sheet
	// MaxInvocationBody bounds the timer envelope read from the host.
	MaxInvocationBody = 1 << 20
)

// HTTPStatuser is implemented by domain errors that know their HTTP status. The error handler answers with
// that status and the error's text.
type HTTPStatuser interface {
	HTTPStatus() int
}

// Runner performs one run of the timer function. Run blocks until the run is over (at most the run budget
// plus settlement time) and returns its summary; a non-nil error means the run failed, and the summary is
// still meaningful. The server never calls Run concurrently with itself.
type Runner interface {
	Run(ctx context.Context) (process.Summary, error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context) (process.Summary, error)

// Run calls f(ctx).
func (f RunnerFunc) Run(ctx context.Context) (process.Summary, error) { return f(ctx) }

// Options configure the server. A nil *Options is invalid; zero fields mean defaults.
type Options struct {
	// Runner performs timer runs. nil ⇒ no ProcessQueue route (404): a standalone `serve` has no timer, its
	// runs are started by `run-once` and `worker`.
	Runner Runner
	// TimerBinding is the timer binding name in function.json; "" accepts whichever single binding the
	// envelope carries.
	TimerBinding string
	// DeferredList serves /api/deferred (drain.Handler.List); nil ⇒ GET answers 501 Not Implemented. A
	// non-nil handler receives every method, so it can name the allowed one in its 405.
	DeferredList echo.HandlerFunc
	// DeferredAction serves /api/deferred/:action (drain.Handler.Action); nil ⇒ POST answers 501 Not
	// Implemented. A non-nil handler receives every method.
	DeferredAction echo.HandlerFunc
	// DeferredPeek serves GET /api/deferred/peek (one message by sequence number, peeked); nil ⇒ the
	// path falls to DeferredAction. A non-nil handler receives every method.
	DeferredPeek echo.HandlerFunc
	// DeadLetterList and DeadLetterAction serve /api/deadletter and /api/deadletter/:action
	// (deadletter.Handler); nil ⇒ 501 Not Implemented. Non-nil handlers receive every method.
	DeadLetterList, DeadLetterAction echo.HandlerFunc
	// UI serves the operator page at /api/ui and its assets at /api/ui/:asset (ui.Handler); nil ⇒ 404.
	UI echo.HandlerFunc
	// Logger receives request and run logs; nil ⇒ discard.
	Logger *slog.Logger
}

// Server holds the routes' shared state.
type Server struct {
	runner  Runner
	binding string
	logger  *slog.Logger
	// running is 1 while a ProcessQueue invocation runs; any goroutine, atomically.
	running atomic.Bool
}

// ErrRunInProgress answers a ProcessQueue invocation that overlaps a running one (409). The Functions host
// never overlaps timer invocations on one instance, so this only guards against manual or misrouted calls.
var ErrRunInProgress = &StatusError{Status: http.StatusConflict, Msg: "a ProcessQueue run is already in progress"}

// ErrNotImplemented answers the deferred-message routes until the drain feature is wired (501).
var ErrNotImplemented = &StatusError{Status: http.StatusNotImplemented, Msg: "the deferred-message drain is not available in this version"}

// ErrDeadLetterOff answers the dead-letter routes when no dead-letter drain is wired (501).
var ErrDeadLetterOff = &StatusError{Status: http.StatusNotImplemented, Msg: "the dead-letter drain is not available in this version"}

// StatusError is an error with an HTTP status.
type StatusError struct {
	Status int
	Msg    string
	Err    error // optional cause
}

func (e *StatusError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// HTTPStatus implements HTTPStatuser.
func (e *StatusError) HTTPStatus() int { return e.Status }

// Unwrap returns the cause.
func (e *StatusError) Unwrap() error { return e.Err }

// New returns an echo instance with every route and the JSON error handler installed.
func New(opts *Options) (*echo.Echo, error) {
	if opts == nil {
		return nil, errors.New("httpapi: Options are required")
	}
	s := &Server{runner: opts.Runner, binding: opts.TimerBinding, logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(refuseCrossSite)
	e.GET("/", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	if s.runner != nil {
		e.POST(ProcessQueuePath, s.processQueue)
	}
	if opts.DeferredList != nil {
		e.Any(DeferredPath, opts.DeferredList)
		e.Any(DeferredPath+"/", opts.DeferredList) // the host's route deferred/{action?} matches it too
	} else {
		e.GET(DeferredPath, notImplemented)
	}
	if opts.DeferredAction != nil {
		e.Any(DeferredActionPath, opts.DeferredAction)
	} else {
		e.POST(DeferredActionPath, notImplemented)
	}
	if opts.DeferredPeek != nil {
		e.Any(DeferredPeekPath, opts.DeferredPeek) // a static route: it wins over :action
	}
	anyOr501(e, DeadLetterPath, opts.DeadLetterList)
	anyOr501(e, DeadLetterPath+"/", opts.DeadLetterList) // the host's route deadletter/{action?} matches it too
	anyOr501(e, DeadLetterAction, opts.DeadLetterAction)
	if opts.UI != nil {
		e.Any(UIPath, opts.UI)
		e.Any(UIPath+"/", opts.UI)
		e.Any(UIAssetPath, opts.UI)
	}
	return e, nil
}

// refuseCrossSite refuses a state-changing request a browser sends on behalf of another site. The drain routes
// take a JSON body without checking its content type (curl -d sends a form type), so a page on any site could
// otherwise make a visitor's browser POST {"all":true} to /api/deadletter/delete as a "simple" request, which
// needs no CORS preflight: against `handler serve` on the operator's machine (no key, the operator's identity)
// or a local make start. Browsers mark every request with Sec-Fetch-Site (W3C Fetch Metadata Request Headers);
// the operator page's own calls are same-origin, and clients that are not browsers (curl, the Functions host,
// SDKs) send none. Safe methods pass: CORS keeps another site from reading the answers.
func refuseCrossSite(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		switch site := req.Header.Get("Sec-Fetch-Site"); site {
		case "", "same-origin", "none":
			return next(c)
		default:
			return &StatusError{Status: http.StatusForbidden, Msg: fmt.Sprintf(
				"%s %s from a page of another site (Sec-Fetch-Site: %.20s) is refused: use the operator page, or call the API directly",
				req.Method, req.URL.Path, site)}
		}
	}
}

func notImplemented(echo.Context) error { return ErrNotImplemented }

// anyOr501 routes every method of path to h, or answers 501 when h is nil.
func anyOr501(e *echo.Echo, path string, h echo.HandlerFunc) {
	if h == nil {
		h = func(echo.Context) error { return ErrDeadLetterOff }
	}
	e.Any(path, h)
}

// processQueue handles the timer invocation: decode the envelope, run, answer the envelope response.
func (s *Server) processQueue(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, MaxInvocationBody+1))
	if err != nil {
		return &StatusError{Status: http.StatusBadRequest, Msg: "cannot read the invocation body", Err: err}
	}
	if len(body) > MaxInvocationBody {
		return &StatusError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("invocation body exceeds %d bytes", MaxInvocationBody)}
	}
	tr, err := invoke.DecodeTimer(body, s.binding)
	if err != nil {
		return &StatusError{Status: http.StatusBadRequest, Msg: "malformed timer invocation", Err: err}
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunInProgress
	}
	defer s.running.Store(false)

	log := s.logger.With(slog.String("invocationId", c.Request().Header.Get("X-Azure-Functions-InvocationId")))
	log.Info("ProcessQueue invoked", slog.Bool("isPastDue", tr.Timer.IsPastDue))
	sum, err := s.runner.Run(c.Request().Context())
	logs := []string{sum.String()}
	if err != nil {
		log.Error("ProcessQueue failed", slog.Any("summary", sum), slog.Any("error", err))
		return &StatusError{Status: http.StatusInternalServerError, Msg: "run failed", Err: err}
	}
	return c.JSON(http.StatusOK, invoke.NewResponse(logs, sum))
}

// errorBody is the JSON of every 4xx/5xx answer.
type errorBody struct {
	Error string `json:"error"`
}

// handleError maps err to a status and writes {"error":"…"}: *echo.HTTPError (routing: 404, 405, …) keeps
// its code, an HTTPStatuser gives its own, anything else is a 500 whose detail is logged, not sent.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		s.logger.Error("error after response was sent", slog.Any("error", err))
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	var hs HTTPStatuser
	switch {
	case errors.As(err, &he):
		status = he.Code
		msg = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
	case errors.As(err, &hs):
		status, msg = hs.HTTPStatus(), err.Error()
	}
	if status >= 500 {
		s.logger.Error("request failed", slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path),
			slog.Int("status", status), slog.Any("error", err))
	} else {
		s.logger.Warn("request rejected", slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path),
			slog.Int("status", status), slog.String("error", msg))
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, errorBody{Error: msg})
	}
	if werr != nil {
		s.logger.Error("cannot write error response", slog.Any("error", werr))
	}
}
