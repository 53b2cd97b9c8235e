// Package atom serves Service Bus's ATOM entity-management API (the REST API behind the SDKs'
// administration clients: Go's admin.Client, JavaScript's ServiceBusAdministrationClient,
// .NET's ServiceBusAdministrationClient) over a broker.Broker, as the official emulator does
// on its admin port:
//
//	GET    /$namespaceinfo                                namespace properties
//	GET    /$Resources/Queues, /$Resources/Topics         feeds ($skip, $top; default 100)
//	PUT    /{queue or topic}                              create (If-Match: * ⇒ update)
//	GET    /{queue or topic}                              description with runtime counts
//	DELETE /{queue or topic}
//	GET    /{topic}/Subscriptions                         feed
//	PUT|GET|DELETE /{topic}/Subscriptions/{sub}
//	GET    /{topic}/Subscriptions/{sub}/Rules             feed
//	PUT|GET|DELETE /{topic}/Subscriptions/{sub}/Rules/{rule}
//
// Requests and replies are ATOM entries and feeds whose content is a QueueDescription,
// TopicDescription, SubscriptionDescription, RuleDescription or NamespaceInfo, with the shapes
// the SDKs send and parse. As on Azure, a GET of an entity that does not exist answers 200 with
// an empty feed (the SDKs report "not found"); creating an existing entity answers 409, a
// DELETE or update of a missing one 404, bad input 400, each with an <Error> body whose
// <Detail> names the problem. With Options.Tokens (strict auth) a request without a valid
// SAS token granting Manage answers 401.
//
// Properties the broker acts on (lock duration, max delivery count, TTL, dead-lettering on
// expiration, duplicate detection, forwarding, sessions — as far as the broker supports them,
// else 400 — and Status, see broker.EntityStatus) go to the broker; the others
// (auto-delete-on-idle, partitioning, sizes, user metadata, authorization rules, batched
// operations, ordering) are kept and reported back but change nothing. An update applies to
// what happens afterwards (broker.Broker.UpdateQueue): open links stay attached, locks already
// held keep their expiry, the next lock takes the new LockDuration.
package atom

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// Options configure New. A nil *Options means all defaults.
type Options struct {
	// Namespace is the namespace name reported by $namespaceinfo. Default "sbemulatorns".
	Namespace string
	// MaxMessageSizeInKilobytes is reported as every entity's MaxMessageSizeInKilobytes.
	// Default 256 (Standard tier).
	MaxMessageSizeInKilobytes int64
	// Logger receives one debug line per request. Nil discards.
	Logger *slog.Logger
	// Tokens, when set, makes every request need an Authorization header holding a SAS token
	// for the request's resource whose policy has the Manage right, as Service Bus requires
	// for its management REST API (the SDKs' administration clients sign the request URL with
	// the connection string's key); otherwise the answer is 401 with an <Error> naming the
	// problem. The emulator passes its strict-auth *mgmt.Handler, so the token format and the
	// key check are put-token's. Nil serves every request, as the official emulator does.
	Tokens TokenChecker
}

// TokenChecker validates a SAS token for an audience (a URL or an entity path) and returns
// what it grants; an error wraps mgmt.ErrBadToken. *mgmt.Handler implements it.
type TokenChecker interface {
	CheckToken(token, audience string) (mgmt.Claims, error)
}

// MaxBodyBytes caps request bodies.
const MaxBodyBytes = 1 << 20

// defaultPageSize is the page size of feeds when the request has no $top (Azure's).
const defaultPageSize = 100

type server struct {
	b       *broker.Broker
	ns      string
	maxKB   int64
	log     *slog.Logger
	tokens  TokenChecker // nil: no Authorization check
	created time.Time

	mu   sync.Mutex
	meta map[string]*meta // lower-cased entity path → properties kept for reporting
}

// New returns the ATOM API over b.
func New(b *broker.Broker, opts *Options) http.Handler {
	s := &server{b: b, ns: "sbemulatorns", maxKB: 256, created: time.Now().UTC(), meta: map[string]*meta{}}
	if opts != nil {
		if opts.Namespace != "" {
			s.ns = opts.Namespace
		}
		if opts.MaxMessageSizeInKilobytes > 0 {
			s.maxKB = opts.MaxMessageSizeInKilobytes
		}
		s.log, s.tokens = opts.Logger, opts.Tokens
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s
}

// apiError is a reply with an HTTP status and a detail.
type apiError struct {
	status int
	detail string
}

func (e *apiError) Error() string { return e.detail }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, detail: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{status: http.StatusNotFound, detail: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &apiError{status: http.StatusConflict, detail: fmt.Sprintf(format, args...)}
}

// errEmpty makes a GET answer the empty feed Azure answers for an entity that does not exist.
var errEmpty = errors.New("no such entity")

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.log.Debug("atom request", "method", r.Method, "path", r.URL.Path)
	path := strings.Trim(r.URL.Path, "/")
	if err := s.authorize(r, path); err != nil {
		s.log.Info("atom request refused", "method", r.Method, "path", r.URL.Path, "reason", err.Error())
		s.fail(w, err)
		return
	}
	var reply string
	status := http.StatusOK
	var err error
	switch r.Method {
	case http.MethodGet:
		reply, err = s.get(r, path)
	case http.MethodPut:
		var body []byte
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			err = badRequest("reading the request body: %v", err)
			break
		}
		update := r.Header.Get("If-Match") != ""
		reply, err = s.put(r, path, body, update)
		if err == nil && !update {
			status = http.StatusCreated
		}
	case http.MethodDelete:
		err = s.delete(path)
	default:
		err = &apiError{status: http.StatusMethodNotAllowed, detail: r.Method + " is not supported by the ATOM API"}
	}
	if errors.Is(err, errEmpty) {
		s.write(w, http.StatusOK, emptyFeed(r))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.write(w, status, reply)
}

// authorize checks the request's Authorization header when Options.Tokens is set: a SAS token
// for path (the resource the client signed, whatever host it named) granting Manage. A valid
// token without Manage is refused in the service's words (Microsoft's
// TestAdminClient_LackPermissions_Queue, _Topic and _Subscription), except a GET of a queue or
// topic that does not exist, which the service answers with its empty feed all the same.
func (s *server) authorize(r *http.Request, path string) error {
	if s.tokens == nil {
		return nil
	}
	unauthorized := func(detail string) error {
		return &apiError{status: http.StatusUnauthorized, detail: detail}
	}
	token := r.Header.Get("Authorization")
	if token == "" {
		return unauthorized("Unauthorized: the request has no Authorization header (a SAS token with the Manage right is required).")
	}
	claims, err := s.tokens.CheckToken(token, path)
	if err != nil {
		return unauthorized(mgmt.TokenErrorDescription(token, err))
	}
	if claims.Rights.Has(mgmt.RightManage) {
		return nil
	}
	rt := parseRoute(path)
	subOp := map[string]string{http.MethodGet: "GetSubscription", http.MethodPut: "CreateOrUpdateSubscription", http.MethodDelete: "DeleteSubscription"}
	switch {
	case rt.kind == "subscriptions":
		return unauthorized("401 SubCode=40100: Unauthorized : Unauthorized access for 'EnumerateSubscriptions' operation.")
	case rt.kind == "subscription" && subOp[r.Method] != "":
		return unauthorized("401 SubCode=40100: Unauthorized : Unauthorized access for '" + subOp[r.Method] + "' operation.")
	case r.Method == http.MethodPut:
		return unauthorized("Authorization failed for specified action: Manage,EntityWrite.")
	case r.Method == http.MethodDelete:
		return unauthorized("Authorization failed for specified action: Manage,EntityDelete.")
	case rt.kind == "entity" && !strings.HasPrefix(path, "$") && !s.b.Known(path):
		return nil // the empty feed of a missing entity
	default:
		return unauthorized("Manage,EntityRead claims required for this operation.")
	}
}

func (s *server) write(w http.ResponseWriter, status int, body string) {
	if body == "" {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// fail writes err as the service's <Error> body, mapping broker sentinels.
func (s *server) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	var ce *broker.ConfigError
	status := http.StatusBadRequest
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.As(err, &ce):
	case errors.Is(err, broker.ErrEntityNotFound):
		status = http.StatusNotFound
	case errors.Is(err, broker.ErrEntityExists):
		status = http.StatusConflict
	case errors.Is(err, broker.ErrClosed):
		status = http.StatusServiceUnavailable
	}
	var x writer
	x.open("Error")
	x.integer("Code", int64(status))
	x.elem("Detail", err.Error())
	x.close("Error")
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, x.b.String())
}

// route splits an entity path into topic, subscription and rule names (kind: "entity",
// "subscriptions", "subscription", "rules", "rule").
type route struct {
	kind                      string
	name, topic, sub, ruleNme string
}

func parseRoute(path string) route {
	parts := strings.Split(path, "/")
	for i := 1; i < len(parts); i++ {
		if !strings.EqualFold(parts[i], "Subscriptions") {
			continue
		}
		topic := strings.Join(parts[:i], "/")
		rest := parts[i+1:]
		switch {
		case len(rest) == 0:
			return route{kind: "subscriptions", topic: topic}
		case len(rest) == 1:
			return route{kind: "subscription", topic: topic, sub: rest[0]}
		case len(rest) == 2 && strings.EqualFold(rest[1], "Rules"):
			return route{kind: "rules", topic: topic, sub: rest[0]}
		case len(rest) == 3 && strings.EqualFold(rest[1], "Rules"):
			return route{kind: "rule", topic: topic, sub: rest[0], ruleNme: rest[2]}
		}
	}
	return route{kind: "entity", name: path}
}

func (s *server) get(r *http.Request, path string) (string, error) {
	switch {
	case strings.EqualFold(path, "$namespaceinfo"):
		return s.namespaceInfo(r), nil
	case strings.EqualFold(path, "$Resources/Queues"):
		return s.feed(r, "Queues", s.b.Queues(), func(name string) (entryBody, error) { return s.queueEntry(name) })
	case strings.EqualFold(path, "$Resources/Topics"):
		return s.feed(r, "Topics", s.b.Topics(), func(name string) (entryBody, error) { return s.topicEntry(name) })
	}
	rt := parseRoute(path)
	switch rt.kind {
	case "subscriptions":
		subs, err := s.b.Subscriptions(rt.topic)
		if err != nil {
			return "", s.missing(err)
		}
		return s.feed(r, "Subscriptions", subs, func(name string) (entryBody, error) { return s.subscriptionEntry(rt.topic, name) })
	case "subscription":
		e, err := s.subscriptionEntry(rt.topic, rt.sub)
		if err != nil {
			return "", s.missing(err)
		}
		return entryXML(r, path, rt.sub, e, true), nil
	case "rules":
		rules, err := s.b.Rules(rt.topic, rt.sub)
		if err != nil {
			return "", s.missing(err)
		}
		names := make([]string, len(rules))
		for i, rl := range rules {
			names[i] = rl.Name
		}
		return s.feed(r, "Rules", names, func(name string) (entryBody, error) { return s.ruleEntry(rt.topic, rt.sub, name) })
	case "rule":
		e, err := s.ruleEntry(rt.topic, rt.sub, rt.ruleNme)
		if err != nil {
			return "", s.missing(err)
		}
		return entryXML(r, path, rt.ruleNme, e, true), nil
	}
	if _, err := s.b.Entity(path); err == nil && !isSubqueue(path) {
		e, err := s.queueEntry(path)
		if err != nil {
			return "", s.missing(err)
		}
		return entryXML(r, path, path, e, true), nil
	}
	e, err := s.topicEntry(path)
	if err != nil {
		return "", s.missing(err)
	}
	return entryXML(r, path, path, e, true), nil
}

// missing turns not-found into the empty-feed answer.
func (s *server) missing(err error) error {
	if errors.Is(err, broker.ErrEntityNotFound) {
		return errEmpty
	}
	return err
}

func isSubqueue(path string) bool {
	return strings.Contains(strings.ToLower(path), "/$deadletterqueue") || strings.Contains(strings.ToLower(path), "/subscriptions/")
}

func (s *server) put(r *http.Request, path string, body []byte, update bool) (string, error) {
	d, err := description(body)
	if err != nil {
		return "", err
	}
	rt := parseRoute(path)
	var e entryBody
	var title string
	switch {
	case rt.kind == "subscription" && d.XMLName.Local == "SubscriptionDescription":
		e, err = s.putSubscription(rt.topic, rt.sub, d, update)
		title = rt.sub
	case rt.kind == "rule" && d.XMLName.Local == "RuleDescription":
		e, err = s.putRule(rt.topic, rt.sub, rt.ruleNme, d, update)
		title = rt.ruleNme
	case rt.kind == "entity" && d.XMLName.Local == "QueueDescription":
		e, err = s.putQueue(path, d, update)
		title = path
	case rt.kind == "entity" && d.XMLName.Local == "TopicDescription":
		e, err = s.putTopic(path, d, update)
		title = path
	default:
		return "", badRequest("a <%s> cannot be put at %q", d.XMLName.Local, "/"+path)
	}
	if err != nil {
		return "", err
	}
	return entryXML(r, path, title, e, true), nil
}

func (s *server) delete(path string) error {
	rt := parseRoute(path)
	var err error
	switch rt.kind {
	case "subscription":
		err = s.b.DeleteSubscription(rt.topic, rt.sub)
		s.forget(rt.topic + broker.SubscriptionsSegment + rt.sub)
	case "rule":
		err = s.b.DeleteRule(rt.topic, rt.sub, rt.ruleNme)
	case "entity":
		if _, qerr := s.b.Entity(path); qerr == nil && !isSubqueue(path) {
			err = s.b.DeleteQueue(path)
		} else {
			err = s.b.DeleteTopic(path)
		}
		s.forget(path)
	default:
		return badRequest("%q cannot be deleted", "/"+path)
	}
	if errors.Is(err, broker.ErrEntityNotFound) {
		return notFound("the messaging entity %q could not be found", path)
	}
	return err
}

func (s *server) namespaceInfo(r *http.Request) string {
	var x writer
	x.open("NamespaceInfo", "xmlns", nsServiceBus, "xmlns:i", nsInstance)
	x.time("CreatedTime", s.created)
	x.elem("MessagingSKU", "Standard")
	x.time("ModifiedTime", s.created)
	x.elem("Name", s.ns)
	x.elem("NamespaceType", "Messaging")
	x.close("NamespaceInfo")
	return entryXML(r, "$namespaceinfo", s.ns, entryBody{xml: x.b.String()}, true)
}

// entryBody is the content of an entry and its times.
type entryBody struct {
	xml              string
	created, updated time.Time
}

// entryXML wraps content in an ATOM entry. The id is the entity's URL, from which the SDKs
// take the entity's name.
func entryXML(r *http.Request, path, title string, e entryBody, root bool) string {
	var x writer
	u := selfURL(r, path, nil)
	if root {
		x.open("entry", "xmlns", nsAtom)
	} else {
		x.open("entry")
	}
	x.elem("id", u)
	x.elem("title", title, "type", "text")
	created, updated := e.created, e.updated
	if created.IsZero() {
		created = time.Now()
	}
	if updated.IsZero() {
		updated = created
	}
	x.elem("published", created.UTC().Format(time.RFC3339))
	x.elem("updated", updated.UTC().Format(time.RFC3339))
	x.open("author")
	x.elem("name", hostName(r))
	x.close("author")
	x.open(`link rel="self" href="` + escapeAttr(u) + `"`)
	x.close("link")
	x.open("content", "type", "application/xml")
	x.raw(e.xml)
	x.close("content")
	x.close("entry")
	return x.b.String()
}

func (s *server) feed(r *http.Request, title string, names []string, entry func(string) (entryBody, error)) (string, error) {
	q := r.URL.Query()
	skip, top := 0, defaultPageSize
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return "", badRequest("$skip: %q is not a non-negative integer", v)
		}
		skip = n
	}
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", badRequest("$top: %q is not a positive integer", v)
		}
		top = n
	}
	var x writer
	x.open("feed", "xmlns", nsAtom)
	x.elem("title", title, "type", "text")
	self := selfURL(r, strings.Trim(r.URL.Path, "/"), q)
	x.elem("id", self)
	x.elem("updated", time.Now().UTC().Format(time.RFC3339))
	x.open(`link rel="self" href="` + escapeAttr(self) + `"`)
	x.close("link")
	end := min(skip+top, len(names))
	if end < len(names) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skip", strconv.Itoa(end))
		next.Set("$top", strconv.Itoa(top))
		x.open(`link rel="next" href="` + escapeAttr(selfURL(r, strings.Trim(r.URL.Path, "/"), next)) + `"`)
		x.close("link")
	}
	base := strings.Trim(r.URL.Path, "/")
	for _, name := range names[min(skip, len(names)):end] {
		e, err := entry(name)
		if errors.Is(err, broker.ErrEntityNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return "", err
		}
		path := name
		switch {
		case strings.HasSuffix(strings.ToLower(base), "/subscriptions"):
			path = base + "/" + name
		case strings.HasSuffix(strings.ToLower(base), "/rules"):
			path = base + "/" + name
		}
		x.raw(entryXML(r, path, name, e, false))
	}
	x.close("feed")
	return x.b.String(), nil
}

// emptyFeed is Azure's answer to a GET of an entity that does not exist (the Go SDK's
// internal/atom.deserializeBody documents it; the SDKs report "not found").
func emptyFeed(r *http.Request) string {
	var x writer
	x.open("feed", "xmlns", nsAtom)
	x.elem("title", "Publicly Listed Services", "type", "text")
	x.elem("subtitle", "This is the list of publicly-listed services currently available.", "type", "text")
	x.elem("id", "uuid:"+strings.Trim(r.URL.Path, "/"))
	x.elem("updated", time.Now().UTC().Format(time.RFC3339))
	x.elem("generator", "Service Bus 1.1")
	x.close("feed")
	return x.b.String()
}

func selfURL(r *http.Request, path string, q url.Values) string {
	u := url.URL{Scheme: "http", Host: hostName(r), Path: "/" + path}
	if q == nil {
		q = url.Values{}
		if v := r.URL.Query().Get("api-version"); v != "" {
			q.Set("api-version", v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func hostName(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return "localhost"
}

func escapeAttr(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
