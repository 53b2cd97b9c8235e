package emulator

import (
	"strings"

	wire "github.com/holdfast-dev/holdfast/emulator/amqp"
	"github.com/holdfast-dev/holdfast/emulator/mgmt"
)

// addGrant records what a successful put-token granted, replacing an earlier grant for the same
// audience (the SDK renews its tokens by putting them again). An audience naming an entity's
// $management node grants on the entity (the SDK's session listing asks for that audience).
func (c *conn) addGrant(g mgmt.Grant) {
	if p, ok := cutSuffixFold(g.Path, managementSuffix); ok {
		g.Path = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.grants {
		if strings.EqualFold(c.grants[i].Path, g.Path) {
			c.grants[i] = g
			return
		}
	}
	c.grants = append(c.grants, g)
}

// covers reports whether a grant for audience path grant reaches entity path: the same path, a
// path below it ("orders" covers "orders/$DeadLetterQueue"), or the whole namespace ("").
func covers(grant, path string) bool {
	grant, path = strings.ToLower(strings.Trim(grant, "/")), strings.ToLower(strings.Trim(path, "/"))
	return grant == "" || grant == path || strings.HasPrefix(path, grant+"/")
}

// rightsLocked returns the connection's unexpired rights on path (every right outside strict
// auth mode) and whether a grant covering path has expired. Caller holds c.mu.
func (c *conn) rightsLocked(path string) (r mgmt.Rights, expired bool) {
	if !c.srv.mgmt.Strict() {
		return mgmt.AllRights, false
	}
	now := c.srv.opts.Clock.Now()
	for _, g := range c.grants {
		if !covers(g.Path, path) {
			continue
		}
		if !g.Expires.IsZero() && !now.Before(g.Expires) {
			expired = true
			continue
		}
		r |= g.Rights
	}
	return r, expired
}

func (c *conn) rights(path string) mgmt.Rights {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, _ := c.rightsLocked(path)
	return r
}

// authorizeLocked returns the error to refuse an operation on path needing need with (nil when
// allowed): amqp:unauthorized-access described as the service does. Manage covers everything;
// need 0 asks for any right at all. Caller holds c.mu.
func (c *conn) authorizeLocked(path string, need mgmt.Rights) *wire.Error {
	r, expired := c.rightsLocked(path)
	if r.Has(mgmt.RightManage) || (need == 0 && r != 0) || (need != 0 && r.Has(need)) {
		return nil
	}
	if need == 0 {
		need = mgmt.RightListen
	}
	desc := mgmt.UnauthorizedDescription(need)
	if expired && r == 0 {
		desc = "ExpiredToken: the token for '" + path + "' expired and was not renewed. " + desc
	}
	return &wire.Error{Condition: condUnauthorized, Description: desc}
}

func (c *conn) authorize(path string, need mgmt.Rights) *wire.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authorizeLocked(path, need)
}

// cutSuffixFold removes suffix from s when s ends with it, ignoring case.
func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}
