package drain

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/ledger"
)

// Routes served by Handler (the Functions host forwards them unchanged).
const (
	ListPath   = "/api/deferred"
	ActionPath = "/api/deferred/:action"
)

// Handler serves the drain API over echo. Every answer is JSON; refusals are 4xx {"error":"…"} naming the
// problem and touch nothing. Safe for concurrent use.
type Handler struct {
	svc *Service
	log *slog.Logger
}

// NewHandler returns the HTTP handler of svc. logger may be nil.
func NewHandler(svc *Service, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, log: logger}
}

// Register adds the drain routes to e for every method, so a wrong method gets a 405 that names the right one.
func (h *Handler) Register(e *echo.Echo) {
	e.Any(ListPath, h.List)
	e.Any(ListPath+"/", h.List) // the host's route deferred/{action?} matches it too
	e.Any(ActionPath, h.Action)
}

// errorBody is the JSON of every refusal and failure.
type errorBody struct {
	Error string `json:"error"`
}

// List serves GET /api/deferred?top=&continuation=.
func (h *Handler) List(c echo.Context) error {
	req := c.Request()
	if req.Method == http.MethodPost {
		return h.refuse(c, badRequest(http.StatusBadRequest, "POST %s needs an action: %s/resubmit, /delete, /deadletter or /reconcile", ListPath, ListPath))
	}
	if req.Method != http.MethodGet {
		return h.refuse(c, methodNotAllowed(req.Method, ListPath, http.MethodGet))
	}
	q := req.URL.Query()
	for k := range q {
		if k != "top" && k != "continuation" && k != "code" { // code: the function key, when passed in the query
			return h.refuse(c, badRequest(http.StatusBadRequest, "unknown query parameter %q: use top and continuation", k))
		}
	}
	top := 0
	if s := q.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListTop {
			return h.refuse(c, badRequest(http.StatusBadRequest, `"top" must be an integer from 1 to %d, got %.40q`, MaxListTop, s))
		}
		top = n
	}
	page, err := h.svc.List(req.Context(), top, q.Get("continuation"))
	if err != nil {
		return h.refuse(c, err)
	}
	return c.JSON(http.StatusOK, page)
}

// Action serves POST /api/deferred/{resubmit|delete|deadletter|reconcile}.
func (h *Handler) Action(c echo.Context) error {
	req := c.Request()
	action, err := ParseAction(c.Param("action"))
	if err != nil {
		return h.refuse(c, err)
	}
	if req.Method != http.MethodPost {
		return h.refuse(c, methodNotAllowed(req.Method, ListPath+"/"+string(action), http.MethodPost))
	}
	body, err := ReadBody(req)
	if err != nil {
		return h.refuse(c, err)
	}
	if action == ActionReconcile {
		rr, err := DecodeReconcileRequest(body)
		if err != nil {
			return h.refuse(c, err)
		}
		res, err := h.svc.Reconcile(req.Context(), rr.Continuation)
		if err != nil && !errors.Is(err, ErrBadRequest) {
			res.Partial, res.Error = true, err.Error()
			return h.partial(c, err, res)
		}
		if err != nil {
			return h.refuse(c, err)
		}
		return c.JSON(http.StatusOK, res)
	}
	r, err := DecodeRequest(action, body)
	if err != nil {
		return h.refuse(c, err)
	}
	res, err := h.svc.Run(req.Context(), r)
	if err != nil && !errors.Is(err, ErrBadRequest) {
		res.Partial, res.Error = true, err.Error()
		return h.partial(c, err, res)
	}
	if err != nil {
		return h.refuse(c, err)
	}
	return c.JSON(http.StatusOK, res)
}

// PartialStatus is the HTTP status of a call that failed after it started: its body is the usual result
// (what was done, the failed rows, the continuation to resume from) with "partial": true and "error".
const PartialStatus = http.StatusServiceUnavailable

// partial answers a call that failed after it started with PartialStatus and its partial result.
func (h *Handler) partial(c echo.Context, err error, res any) error {
	h.log.Error("drain call failed after partial progress; answering what it did", slog.String("method", c.Request().Method),
		slog.String("path", c.Request().URL.Path), slog.Any("error", err))
	return c.JSON(PartialStatus, res)
}

func methodNotAllowed(method, path, allowed string) *RequestError {
	return badRequest(http.StatusMethodNotAllowed, "method %s is not allowed on %s; use %s", method, path, allowed)
}

// refuse answers err (see WriteError).
func (h *Handler) refuse(c echo.Context, err error) error { return WriteError(c, h.log, err) }

// WriteError answers err as JSON {"error":"…"}: a *RequestError with its status and text (a 405 also names
// the allowed method in Allow); anything else 500, logged with detail on log.
func WriteError(c echo.Context, log *slog.Logger, err error) error {
	status, msg := http.StatusInternalServerError, "drain failed: "+err.Error()
	var re *RequestError
	if errors.As(err, &re) {
		status, msg = re.Status, re.Msg
	}
	if status >= 500 {
		log.Error("drain request failed", slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path), slog.Any("error", err))
	} else {
		log.Warn("drain request refused", slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path),
			slog.Int("status", status), slog.String("error", msg))
	}
	if status == http.StatusMethodNotAllowed {
		c.Response().Header().Set("Allow", strings.TrimSpace(msg[strings.LastIndex(msg, " ")+1:]))
	}
	return c.JSON(status, errorBody{Error: msg})
}

// ReadBody reads a request body of at most MaxBodyBytes; a longer or unreadable one gives a *RequestError.
func ReadBody(req *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, badRequest(http.StatusBadRequest, "cannot read the request body: %v", err)
	}
	if len(body) > MaxBodyBytes {
		return nil, tooLarge()
	}
	return body, nil
}

// MethodNotAllowed is the 405 refusal of method on path, naming the allowed one.
func MethodNotAllowed(method, path, allowed string) *RequestError {
	return methodNotAllowed(method, path, allowed)
}

func isInvalid(err error) bool { return errors.Is(err, ledger.ErrInvalid) }
