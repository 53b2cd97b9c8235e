package deadletter

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/holdfast-dev/holdfast/internal/browse"
	"github.com/holdfast-dev/holdfast/internal/drain"
)

// Routes served by Handler (the Functions host forwards them unchanged).
const (
	ListPath   = "/api/deadletter"
	ActionPath = "/api/deadletter/:action"
	// PeekAction is the GET action that shows one message: /api/deadletter/peek?sequenceNumber=N.
	PeekAction = "peek"
)

// Handler serves the dead-letter drain over echo. Every answer is JSON; refusals are 4xx {"error":"…"}
// naming the problem and touch nothing. Safe for concurrent use.
type Handler struct {
	svc  *Service
	peek echo.HandlerFunc
	log  *slog.Logger
}

// NewHandler returns the HTTP handler of svc. logger may be nil.
func NewHandler(svc *Service, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, peek: browse.Handler(svc.o.Shared), log: logger}
}

// Register adds the routes to e for every method, so a wrong method gets a 405 that names the right one.
func (h *Handler) Register(e *echo.Echo) {
	e.Any(ListPath, h.List)
	e.Any(ListPath+"/", h.List) // the host's route deadletter/{action?} matches it too
	e.Any(ActionPath, h.Action)
}

// List serves GET /api/deadletter?top=&continuation=.
func (h *Handler) List(c echo.Context) error {
	req := c.Request()
	if req.Method == http.MethodPost {
		return drain.WriteError(c, h.log, drain.NewRequestError(http.StatusBadRequest, "POST %s needs an action: %s/resubmit or /delete", ListPath, ListPath))
	}
	if req.Method != http.MethodGet {
		return drain.WriteError(c, h.log, drain.MethodNotAllowed(req.Method, ListPath, http.MethodGet))
	}
	q := req.URL.Query()
	for k := range q {
		if k != "top" && k != "continuation" && k != "code" { // code: the function key, when passed in the query
			return drain.WriteError(c, h.log, drain.NewRequestError(http.StatusBadRequest, "unknown query parameter %q: use top and continuation", k))
		}
	}
	top := 0
	if s := q.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return drain.WriteError(c, h.log, drain.NewRequestError(http.StatusBadRequest, `"top" must be an integer from 1 to %d, got %.40q`, MaxPageSize, s))
		}
		top = n
	}
	page, err := h.svc.List(req.Context(), top, q.Get("continuation"))
	if err != nil {
		return drain.WriteError(c, h.log, err)
	}
	return c.JSON(http.StatusOK, page)
}

// Action serves POST /api/deadletter/{resubmit|delete} and GET /api/deadletter/peek.
func (h *Handler) Action(c echo.Context) error {
	req := c.Request()
	if c.Param("action") == PeekAction {
		if err := h.peek(c); err != nil {
			if re, ok := err.(*browse.RequestError); ok {
				return drain.WriteError(c, h.log, drain.NewRequestError(re.Status, "%s", re.Msg))
			}
			return drain.WriteError(c, h.log, err)
		}
		return nil
	}
	action, err := ParseAction(c.Param("action"))
	if err != nil {
		return drain.WriteError(c, h.log, err)
	}
	if req.Method != http.MethodPost {
		return drain.WriteError(c, h.log, drain.MethodNotAllowed(req.Method, ListPath+"/"+string(action), http.MethodPost))
	}
	body, err := drain.ReadBody(req)
	if err != nil {
		return drain.WriteError(c, h.log, err)
	}
	sel, err := drain.DecodeSelection(body)
	if err != nil {
		return drain.WriteError(c, h.log, err)
	}
	res, err := h.svc.Run(req.Context(), action, sel)
	if err != nil && !errors.Is(err, drain.ErrBadRequest) {
		// Failed after it started: answer what it did, as the deferred drain does.
		res.Partial, res.Error = true, err.Error()
		h.log.Error("dead-letter drain call failed after it started; answering what it did", slog.Any("error", err))
		return c.JSON(drain.PartialStatus, res)
	}
	if err != nil {
		return drain.WriteError(c, h.log, err)
	}
	return c.JSON(http.StatusOK, res)
}
