package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NewConsoleHandler returns a slog.Handler that writes one readable line per record, for a person at a
// terminal (cmd/devhost uses it when its stdout is one; otherwise it logs JSON):
//
//	14:03:07.512 INFO  executing function=ProcessQueue invocationId=2f0c… reason=admin
//	14:03:07.530 INFO  handler: ProcessQueue invoked isPastDue=false
//	14:03:49.004 INFO  succeeded function=ProcessQueue status=200 duration=41.47s returnValue.received=3 …
//
// A record carrying a line of the custom handler's output is printed as that line, marked "handler:": a JSON
// log record of the handler is flattened (its level and message first, its time dropped), so the handler's
// records are not nested inside the host's. JSON values such as a run's return value become key=value pairs.
// A nil opts means Info level.
func NewConsoleHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	h := &consoleHandler{out: &lockedWriter{w: w}, level: slog.LevelInfo}
	if opts != nil && opts.Level != nil {
		h.level = opts.Level
	}
	return h
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

type consoleHandler struct {
	out    *lockedWriter
	level  slog.Leveler
	attrs  []slog.Attr // from WithAttrs, keys already prefixed with their groups
	prefix string      // open groups, "a.b."
}

func (h *consoleHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *consoleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		a.Key = h.prefix + a.Key
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *consoleHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

func (h *consoleHandler) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	level, msg := r.Level.String(), r.Message
	var pairs []kv
	for _, a := range h.attrs {
		pairs = appendAttr(pairs, "", a)
	}
	var line any
	r.Attrs(func(a slog.Attr) bool {
		if (r.Message == msgHandlerStdout || r.Message == msgHandlerStderr) && a.Key == "line" {
			line = a.Value.Any()
			return true
		}
		pairs = appendAttr(pairs, h.prefix, a)
		return true
	})
	if line != nil {
		// The handler's own record: its level (stdout records carry one) and message replace the host's.
		msg = "handler: "
		switch v := line.(type) {
		case json.RawMessage:
			var inner []kv
			flattenJSON(&inner, "", v)
			rest := inner[:0]
			for _, p := range inner {
				switch p.key {
				case "msg":
					msg += p.raw
				case "level":
					if r.Message == msgHandlerStdout {
						level = strings.ToUpper(p.raw)
					}
				case "time":
				default:
					rest = append(rest, p)
				}
			}
			pairs = append(rest, pairs...)
		default:
			msg += fmt.Sprint(v)
		}
	}
	fmt.Fprintf(&b, "%s %-5s %s", ts.Format("15:04:05.000"), level, msg)
	for _, p := range pairs {
		b.WriteByte(' ')
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.val)
	}
	b.WriteByte('\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(b.Bytes())
	return err
}

// kv is one key=value pair: val as printed (quoted when needed), raw unquoted.
type kv struct{ key, val, raw string }

func appendAttr(out []kv, prefix string, a slog.Attr) []kv {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return out
	}
	key := prefix + a.Key
	switch a.Value.Kind() {
	case slog.KindGroup:
		for _, g := range a.Value.Group() {
			out = appendAttr(out, key+".", g)
		}
		return out
	case slog.KindString:
		return append(out, kv{key: key, val: quote(a.Value.String())})
	case slog.KindTime:
		return append(out, kv{key: key, val: a.Value.Time().Format(time.RFC3339Nano)})
	case slog.KindDuration:
		return append(out, kv{key: key, val: a.Value.Duration().Round(time.Millisecond).String()})
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case json.RawMessage:
			flattenJSON(&out, key, v)
			return out
		case error:
			return append(out, kv{key: key, val: quote(v.Error())})
		case fmt.Stringer:
			return append(out, kv{key: key, val: quote(v.String())})
		}
	}
	return append(out, kv{key: key, val: quote(a.Value.String())})
}

// flattenJSON appends the scalars of a JSON value in document order: objects become key.sub=value, arrays and
// anything that does not parse stay compact JSON.
func flattenJSON(out *[]kv, key string, raw json.RawMessage) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := walkJSON(dec, out, key); err != nil {
		var c bytes.Buffer
		if json.Compact(&c, raw) != nil {
			c.Reset()
			c.Write(raw)
		}
		*out = append(*out, kv{key: key, val: quote(c.String())})
	}
}

func walkJSON(dec *json.Decoder, out *[]kv, key string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			var items []any
			for dec.More() {
				var v any
				if err := dec.Decode(&v); err != nil {
					return err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			b, _ := json.Marshal(items) // values just decoded from JSON
			*out = append(*out, kv{key: key, val: quote(string(b))})
			return nil
		}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			sub := k
			if key != "" {
				sub = key + "." + k
			}
			if err := walkJSON(dec, out, sub); err != nil {
				return err
			}
		}
		_, err := dec.Token() // '}'
		return err
	case string:
		*out = append(*out, kv{key: key, val: quote(t), raw: t})
	case nil:
		*out = append(*out, kv{key: key, val: "null"})
	default:
		*out = append(*out, kv{key: key, val: fmt.Sprint(t)})
	}
	return nil
}

// quote leaves simple values bare and quotes the rest, so that each key=value stays one token.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " =\"\t\n") {
		return strconv.Quote(s)
	}
	return s
}
