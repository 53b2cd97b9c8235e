package atom

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast-dev/holdfast/emulator/broker"
)

// XML namespaces of the ATOM management API.
const (
	nsAtom        = "http://www.w3.org/2005/Atom"
	nsServiceBus  = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
	nsInstance    = "http://www.w3.org/2001/XMLSchema-instance"
	nsSchema      = "http://www.w3.org/2001/XMLSchema"
	nsCountDetail = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
)

// node is an XML element read without a schema: requests are matched by local names, as the
// service's serializer does, whatever prefixes the SDK chose.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []node     `xml:",any"`
}

// child returns the first child element named local (case-sensitive, any namespace).
func (n *node) child(local string) *node {
	if n == nil {
		return nil
	}
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Local == local {
			return &n.Nodes[i]
		}
	}
	return nil
}

// text returns the trimmed text of child local and whether the child is present.
func (n *node) text(local string) (string, bool) {
	c := n.child(local)
	if c == nil {
		return "", false
	}
	return strings.TrimSpace(c.Text), true
}

// xsiType returns the local part of the element's xsi:type attribute ("SqlFilter" for
// i:type="SqlFilter", "string" for i:type="d6p1:string").
func (n *node) xsiType() string {
	for _, a := range n.Attrs {
		if a.Name.Local == "type" { // xsi:type, whatever prefix the client bound (or forgot to bind)
			v := a.Value
			if i := strings.LastIndexByte(v, ':'); i >= 0 {
				v = v[i+1:]
			}
			return v
		}
	}
	return ""
}

// description parses an ATOM entry and returns the element inside its content (e.g. the
// QueueDescription). Errors are 400s naming the problem.
func description(body []byte) (*node, error) {
	var entry node
	if err := xml.Unmarshal(body, &entry); err != nil {
		return nil, badRequest("the request body is not XML: %v", err)
	}
	if entry.XMLName.Local != "entry" {
		return nil, badRequest("the request body must be an ATOM <entry>, got <%s>", entry.XMLName.Local)
	}
	content := entry.child("content")
	if content == nil || len(content.Nodes) == 0 {
		return nil, badRequest("the <entry> has no <content> with a description")
	}
	return &content.Nodes[0], nil
}

// fields reads the typed values of a description, recording the first bad one.
type fields struct {
	n   *node
	err error
}

func (f *fields) fail(name, format string, args ...any) {
	if f.err == nil {
		f.err = badRequest("%s: %s", name, fmt.Sprintf(format, args...))
	}
}

func (f *fields) str(name string, def string) string {
	if v, ok := f.n.text(name); ok {
		return v
	}
	return def
}

func (f *fields) boolean(name string, def bool) bool {
	v, ok := f.n.text(name)
	if !ok || v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		f.fail(name, "%q is not true or false", v)
	}
	return b
}

func (f *fields) integer(name string, def int64, lo, hi int64) int64 {
	v, ok := f.n.text(name)
	if !ok || v == "" {
		return def
	}
	i, err := strconv.ParseInt(v, 10, 64)
	if err != nil || i < lo || i > hi {
		f.fail(name, "%q is not an integer in %d..%d", v, lo, hi)
		return def
	}
	return i
}

func (f *fields) duration(name string, def time.Duration) time.Duration {
	v, ok := f.n.text(name)
	if !ok || v == "" {
		return def
	}
	d, err := broker.ParseISODuration(v)
	if err != nil {
		f.fail(name, "%v", err)
		return def
	}
	return d
}

// writer builds the XML of replies. Values are escaped; element order is the caller's.
type writer struct{ b strings.Builder }

func (w *writer) open(name string, attrs ...string) {
	w.b.WriteByte('<')
	w.b.WriteString(name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteByte(' ')
		w.b.WriteString(attrs[i])
		w.b.WriteString(`="`)
		_ = xml.EscapeText(&w.b, []byte(attrs[i+1]))
		w.b.WriteByte('"')
	}
	w.b.WriteByte('>')
}

func (w *writer) close(name string) {
	w.b.WriteString("</")
	w.b.WriteString(name)
	w.b.WriteByte('>')
}

func (w *writer) elem(name, text string, attrs ...string) {
	w.open(name, attrs...)
	_ = xmlEscape(w, text)
	w.close(name)
}

func (w *writer) boolean(name string, v bool)  { w.elem(name, strconv.FormatBool(v)) }
func (w *writer) integer(name string, v int64) { w.elem(name, strconv.FormatInt(v, 10)) }
func (w *writer) duration(name string, d time.Duration) {
	w.elem(name, formatDuration(d))
}
func (w *writer) time(name string, t time.Time) { w.elem(name, formatTime(t)) }

func xmlEscape(x *writer, s string) error {
	// Only what element text must escape: the service writes quotes and apostrophes as they
	// are (clients matching its error texts see them so); characters XML cannot hold become
	// U+FFFD, as encoding/xml does.
	for _, c := range s {
		switch {
		case c == '&':
			x.b.WriteString("&amp;")
		case c == '<':
			x.b.WriteString("&lt;")
		case c == '>':
			x.b.WriteString("&gt;")
		case c == '\r':
			x.b.WriteString("&#xD;")
		case !isXMLChar(c):
			x.b.WriteRune('\uFFFD')
		default:
			x.b.WriteRune(c)
		}
	}
	return nil
}

// isXMLChar reports whether c may appear in an XML document (XML 1.0 §2.2).
func isXMLChar(c rune) bool {
	return c == 0x09 || c == 0x0A || c == 0x0D || c >= 0x20 && c <= 0xD7FF ||
		c >= 0xE000 && c <= 0xFFFD || c >= 0x10000 && c <= 0x10FFFF
}

// raw appends pre-built XML (an echoed AuthorizationRules element).
func (w *writer) raw(s string) { w.b.WriteString(s) }

// neverText is .NET's TimeSpan.MaxValue, which Azure writes for "never" (a TTL or
// AutoDeleteOnIdle that does not run out).
const neverText = "P10675199DT2H48M5.4775807S"

// formatDuration writes d as .NET's XmlConvert does for the values the emulator keeps: PT1M,
// P14D, PT4H, and TimeSpan.MaxValue for broker.MaxDuration.
func formatDuration(d time.Duration) string {
	if d == broker.MaxDuration {
		return neverText
	}
	return broker.FormatISODuration(d)
}

// formatTime writes t as the service does (UTC, fractional seconds when present). The zero
// time is .NET's DateTime.MinValue, which the service answers for an entity never accessed.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
