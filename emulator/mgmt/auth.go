package mgmt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TokenTypeSAS is the put-token "type" of a shared access signature.
const TokenTypeSAS = "servicebus.windows.net:sastoken"

// CondUnauthorized is the condition of a 401 reply.
const CondUnauthorized = "amqp:unauthorized-access"

// Rights are the claims a shared access policy grants (Azure's AccessRights).
type Rights uint8

const (
	RightListen Rights = 1 << iota // receive, peek, renew, settle, session state
	RightSend                      // send, schedule, cancel scheduled
	RightManage                    // entity management; on Azure it comes with Listen and Send
	AllRights   = RightListen | RightSend | RightManage
)

// Has reports whether r includes every right of need.
func (r Rights) Has(need Rights) bool { return r&need == need }

// String names the rights as Azure does: "Listen, Send, Manage".
func (r Rights) String() string {
	var names []string
	for _, x := range []struct {
		r    Rights
		name string
	}{{RightListen, "Listen"}, {RightSend, "Send"}, {RightManage, "Manage"}} {
		if r&x.r != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ", ")
}

// ParseRights reads Azure's right names (Listen, Send, Manage; case-insensitive). Manage needs
// Listen and Send too, as on Azure.
func ParseRights(names []string) (Rights, error) {
	var r Rights
	for _, n := range names {
		switch strings.ToLower(n) {
		case "listen":
			r |= RightListen
		case "send":
			r |= RightSend
		case "manage":
			r |= RightManage
		default:
			return 0, fmt.Errorf("right %q: must be Listen, Send or Manage", n)
		}
	}
	if r == 0 {
		return 0, errors.New("at least one right (Listen, Send, Manage) is required")
	}
	if r.Has(RightManage) && !r.Has(RightListen|RightSend) {
		return 0, errors.New("Manage requires Listen and Send, as on Azure")
	}
	return r, nil
}

// SASKey is a shared access policy: the key name (skn), the key the SDKs sign with and the
// rights its tokens carry (zero means AllRights, a namespace's RootManageSharedAccessKey).
type SASKey struct {
	KeyName string
	Key     string
	Rights  Rights
}

func (k SASKey) rights() Rights {
	if k.Rights == 0 {
		return AllRights
	}
	return k.Rights
}

// ErrBadToken is wrapped by every token validation failure.
var ErrBadToken = errors.New("invalid shared access signature")

// ErrTokenExpired is wrapped (with ErrBadToken) when a token's expiry (se) has passed.
var ErrTokenExpired = errors.New("token expired")

// Claims are what a validated token grants: its policy's rights until Expires.
type Claims struct {
	KeyName string
	Rights  Rights
	Expires time.Time
}

// ValidateSASToken checks a token of the form
// "SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<key name>" as the
// SDKs build it: sig = URL-escaped base64(HMAC-SHA256(key, sr + "\n" + se)), computed over sr
// exactly as it appears in the token. The resource must cover audience (same path or a
// prefix of it, ignoring scheme, host and case) and se must be after now. Errors wrap
// ErrBadToken and name the problem.
func ValidateSASToken(token, audience string, keys []SASKey, now time.Time) error {
	_, err := CheckSASToken(token, audience, keys, now)
	return err
}

// CheckSASToken is ValidateSASToken returning what the token grants.
func CheckSASToken(token, audience string, keys []SASKey, now time.Time) (Claims, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), "SharedAccessSignature ")
	if !ok {
		return Claims{}, fmt.Errorf("%w: the token does not start with \"SharedAccessSignature \"", ErrBadToken)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	for _, k := range []string{"sr", "sig", "se", "skn"} {
		if fields[k] == "" {
			return Claims{}, fmt.Errorf("%w: field %q is missing", ErrBadToken, k)
		}
	}
	var key *SASKey
	for i := range keys {
		if keys[i].KeyName == fields["skn"] {
			key = &keys[i]
		}
	}
	if key == nil {
		return Claims{}, fmt.Errorf("%w: unknown key name (skn) %q", ErrBadToken, fields["skn"])
	}
	se, err := strconv.ParseInt(fields["se"], 10, 64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: expiry (se) %q is not unix seconds", ErrBadToken, fields["se"])
	}
	if !now.Before(time.Unix(se, 0)) {
		return Claims{}, fmt.Errorf("%w: %w at %s", ErrBadToken, ErrTokenExpired, time.Unix(se, 0).UTC().Format(time.RFC3339))
	}
	sig, err := url.QueryUnescape(fields["sig"])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature (sig) is not URL-escaped: %v", ErrBadToken, err)
	}
	mac := hmac.New(sha256.New, []byte(key.Key))
	mac.Write([]byte(fields["sr"] + "\n" + fields["se"]))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return Claims{}, fmt.Errorf("%w: the signature does not match key %q", ErrBadToken, key.KeyName)
	}
	sr, err := url.QueryUnescape(fields["sr"])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: resource (sr) is not URL-escaped: %v", ErrBadToken, err)
	}
	res, aud := strings.ToLower(resourcePath(sr)), strings.ToLower(audiencePath(audience))
	if res != "" && aud != res && !strings.HasPrefix(aud, strings.TrimSuffix(res, "/")+"/") {
		return Claims{}, fmt.Errorf("%w: the token is for %q, not %q", ErrBadToken, sr, audience)
	}
	return Claims{KeyName: key.KeyName, Rights: key.rights(), Expires: time.Unix(se, 0)}, nil
}

// tokenExpiry reads se from a SAS token (zero when it has none).
func tokenExpiry(token string) time.Time {
	for _, kv := range strings.Split(strings.TrimPrefix(strings.TrimSpace(token), "SharedAccessSignature "), "&") {
		if k, v, _ := strings.Cut(kv, "="); k == "se" {
			if se, err := strconv.ParseInt(v, 10, 64); err == nil {
				return time.Unix(se, 0)
			}
		}
	}
	return time.Time{}
}

// resourcePath is the entity path of a token's resource URI: "sb://host/path", "host/path"
// (no scheme, as namespace-wide tokens often are) or a bare path after a host.
func resourcePath(sr string) string {
	if _, rest, ok := strings.Cut(sr, "://"); ok {
		sr = rest
	}
	_, p, _ := strings.Cut(sr, "/")
	p, _, _ = strings.Cut(p, "?") // the SDKs' administration clients sign the request URL, query included
	return strings.Trim(p, "/")
}
