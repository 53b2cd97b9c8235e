package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Settings of the webhook processor (HOLDFAST_PROCESSOR=webhook). They are read only for that processor.
const (
	SettingWebhookURL      = "HOLDFAST_WEBHOOK_URL"
	SettingWebhookTimeout  = "HOLDFAST_WEBHOOK_TIMEOUT"
	SettingWebhookHeaders  = "HOLDFAST_WEBHOOK_HEADERS"
	SettingWebhookAudience = "HOLDFAST_WEBHOOK_AUDIENCE"
)

// Webhook configures the webhook processor. It is comparable; Headers is kept as written and parsed with
// ParseWebhookHeaders.
type Webhook struct {
	// URL is the absolute http(s) URL each message is POSTed to.
	URL string
	// Timeout bounds one request, response body included. Default: the run budget, which it may not exceed.
	Timeout time.Duration
	// Headers is a JSON object of static request headers, e.g. {"X-Api-Key":"…"}; "" for none.
	Headers string
	// Audience, when set, makes each request carry a Microsoft Entra bearer token for this audience (an
	// application ID URI or client ID), obtained with the app's managed identity; "" for none.
	Audience string
}

// Scope is the OAuth scope of Audience: the audience with "/.default" appended unless it already ends so.
func (w Webhook) Scope() string {
	if w.Audience == "" || strings.HasSuffix(w.Audience, "/.default") {
		return w.Audience
	}
	return strings.TrimRight(w.Audience, "/") + "/.default"
}

// reservedWebhookHeaders are set by the webhook processor itself or by the HTTP client; a static header may
// not replace them.
var reservedWebhookHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Host": true, "Transfer-Encoding": true, "Connection": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Keep-Alive": true, "Proxy-Connection": true,
}

// WebhookHeaderPrefix starts every header the webhook processor sets from the message.
const WebhookHeaderPrefix = "X-Holdfast-"

// ParseWebhookHeaders parses HOLDFAST_WEBHOOK_HEADERS: a JSON object whose values are strings. Names must be
// HTTP tokens and not one the processor sets (Content-Type, Content-Length, Host, hop-by-hop headers,
// X-Holdfast-*, and Authorization when withToken); values must be printable (no CR, LF or other control
// characters). "" gives no headers.
func ParseWebhookHeaders(s string, withToken bool) (http.Header, error) {
	h := http.Header{}
	if strings.TrimSpace(s) == "" {
		return h, nil
	}
	var m map[string]string
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf(`not a JSON object of strings, e.g. {"X-Api-Key":"…"}: %w`, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	for name, value := range m {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !isToken(name):
			return nil, fmt.Errorf("header name %q is not an HTTP token", name)
		case reservedWebhookHeaders[canon] || strings.HasPrefix(canon, WebhookHeaderPrefix):
			return nil, fmt.Errorf("header %s is set by the webhook processor", canon)
		case canon == "Authorization" && withToken:
			return nil, fmt.Errorf("header Authorization is set from %s", SettingWebhookAudience)
		case !isHeaderValue(value):
			return nil, fmt.Errorf("header %s has a control character in its value", canon)
		}
		h.Set(canon, value)
	}
	return h, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func isHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// loadWebhook reads the webhook settings; the timeout defaults to the run budget.
func (c *Config) loadWebhook(get func(string) string) error {
	c.Webhook = Webhook{URL: get(SettingWebhookURL), Headers: get(SettingWebhookHeaders), Audience: get(SettingWebhookAudience),
		Timeout: c.RunBudget}
	return parseDuration(get, SettingWebhookTimeout, &c.Webhook.Timeout)
}

// validateWebhook checks the webhook settings; each error names its setting.
func (c *Config) validateWebhook() error {
	w := c.Webhook
	var errs []error
	switch u, err := url.Parse(w.URL); {
	case w.URL == "":
		errs = append(errs, &SettingError{Setting: SettingWebhookURL, Problem: "not set", Fix: "set the absolute http(s) URL the webhook processor POSTs each message to"})
	case err != nil:
		// url.Parse's error quotes the whole URL, which may carry a key: name the problem only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		errs = append(errs, &SettingError{Setting: SettingWebhookURL, Problem: fmt.Sprintf("not a URL: %v", err), Fix: "use e.g. https://work.example.com/messages"})
	case !u.IsAbs() || u.Host == "":
		errs = append(errs, &SettingError{Setting: SettingWebhookURL, Problem: "a relative URL", Fix: "use an absolute http(s) URL, e.g. https://work.example.com/messages"})
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, &SettingError{Setting: SettingWebhookURL, Problem: fmt.Sprintf("scheme %q is not http or https", u.Scheme), Fix: "use an http(s) URL"})
	case u.User != nil:
		errs = append(errs, &SettingError{Setting: SettingWebhookURL, Problem: "the URL carries user information", Fix: "pass credentials in " + SettingWebhookHeaders + " or use " + SettingWebhookAudience})
	}
	switch {
	case w.Timeout <= 0:
		errs = append(errs, &SettingError{Setting: SettingWebhookTimeout, Problem: fmt.Sprintf("%v is not positive", w.Timeout), Fix: "use a positive Go duration, e.g. 2m"})
	case w.Timeout > c.RunBudget:
		errs = append(errs, &SettingError{Setting: SettingWebhookTimeout, Problem: fmt.Sprintf("%v is longer than the run budget %v", w.Timeout, c.RunBudget),
			Fix: fmt.Sprintf("use at most %v (%s), or leave it unset for the run budget", c.RunBudget, SettingRunBudget)})
	}
	if _, err := ParseWebhookHeaders(w.Headers, w.Audience != ""); err != nil {
		errs = append(errs, &SettingError{Setting: SettingWebhookHeaders, Problem: err.Error(), Fix: `use a JSON object of header names to values, e.g. {"X-Api-Key":"…"}`})
	}
	if strings.ContainsAny(w.Audience, " \t\r\n") {
		errs = append(errs, &SettingError{Setting: SettingWebhookAudience, Problem: fmt.Sprintf("%q contains whitespace", w.Audience),
			Fix: "use the application ID URI or client ID of the Entra app that protects the endpoint, e.g. api://work"})
	}
	return errors.Join(errs...)
}
