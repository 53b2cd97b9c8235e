package devhost

import (
	"fmt"
	"net/url"
	"strings"
)

// route is a compiled function route template such as "api/deferred/{action?}". Literal segments
// match case-insensitively (as ASP.NET routing does); {name} matches one non-empty segment;
// {name?} may be absent (only trailing segments may be optional); {*name} matches the rest of the
// path; ":constraint" suffixes are accepted and not checked.
type route struct {
	template string
	segs     []routeSeg
}

type routeSeg struct {
	literal  string // set for literal segments
	param    string // set for parameters
	optional bool
	catchAll bool
}

func parseRoute(tmpl string) (*route, error) {
	r := &route{template: tmpl}
	t := strings.Trim(tmpl, "/")
	if t == "" {
		return r, nil
	}
	parts := strings.Split(t, "/")
	for i, p := range parts {
		seg, err := parseRouteSeg(p)
		if err != nil {
			return nil, fmt.Errorf("template %q segment %q: %w", tmpl, p, err)
		}
		last := i == len(parts)-1
		if seg.catchAll && !last {
			return nil, fmt.Errorf("template %q: catch-all {*%s} must be the last segment", tmpl, seg.param)
		}
		if len(r.segs) > 0 && r.segs[len(r.segs)-1].optional && !seg.optional && !seg.catchAll {
			return nil, fmt.Errorf("template %q: only trailing segments may be optional", tmpl)
		}
		r.segs = append(r.segs, seg)
	}
	return r, nil
}

func parseRouteSeg(p string) (routeSeg, error) {
	if p == "" {
		return routeSeg{}, fmt.Errorf("empty segment")
	}
	if !strings.HasPrefix(p, "{") {
		if strings.ContainsAny(p, "{}") {
			return routeSeg{}, fmt.Errorf("parameters must fill a whole segment")
		}
		return routeSeg{literal: p}, nil
	}
	if !strings.HasSuffix(p, "}") {
		return routeSeg{}, fmt.Errorf("unterminated parameter")
	}
	name := p[1 : len(p)-1]
	var seg routeSeg
	if strings.HasPrefix(name, "*") {
		seg.catchAll, seg.optional = true, true
		name = strings.TrimPrefix(name, "*")
	}
	if strings.HasSuffix(name, "?") {
		seg.optional = true
		name = strings.TrimSuffix(name, "?")
	}
	if n, _, ok := strings.Cut(name, ":"); ok {
		name = n // constraint accepted, not enforced
	}
	if name == "" || strings.ContainsAny(name, "{}?*") {
		return routeSeg{}, fmt.Errorf("bad parameter name")
	}
	seg.param = name
	return seg, nil
}

// match reports whether the escaped URL path p (with or without a leading "/") matches the route,
// and returns the route parameters (unescaped).
func (r *route) match(p string) (map[string]string, bool) {
	p = strings.Trim(p, "/")
	var parts []string
	if p != "" {
		parts = strings.Split(p, "/")
	}
	params := map[string]string{}
	for i, seg := range r.segs {
		if seg.catchAll {
			if i < len(parts) {
				rest, err := url.PathUnescape(strings.Join(parts[i:], "/"))
				if err != nil {
					return nil, false
				}
				params[seg.param] = rest
			}
			return params, true
		}
		if i >= len(parts) {
			if seg.optional {
				continue
			}
			return nil, false
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil || v == "" {
			return nil, false
		}
		if seg.param == "" {
			if !strings.EqualFold(seg.literal, v) {
				return nil, false
			}
			continue
		}
		params[seg.param] = v
	}
	if len(parts) > len(r.segs) {
		return nil, false
	}
	return params, true
}
