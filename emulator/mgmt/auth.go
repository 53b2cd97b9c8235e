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

// SASKey is a shared access policy: the key name (skn) and the key the SDKs sign with.
type SASKey struct {
	KeyName string
	Key     string
}

// ErrBadToken is wrapped by every token validation failure.
var ErrBadToken = errors.New("invalid shared access signature")

// ValidateSASToken checks a token of the form
// "SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<key name>" as the
// SDKs build it: sig = URL-escaped base64(HMAC-SHA256(key, sr + "\n" + se)), computed over sr
// exactly as it appears in the token. The resource must cover audience (same path or a
// prefix of it, ignoring scheme, host and case) and se must be after now. Errors wrap
// ErrBadToken and name the problem.
func ValidateSASToken(token, audience string, keys []SASKey, now time.Time) error {
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), "SharedAccessSignature ")
	if !ok {
		return fmt.Errorf("%w: the token does not start with \"SharedAccessSignature \"", ErrBadToken)
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	for _, k := range []string{"sr", "sig", "se", "skn"} {
		if fields[k] == "" {
			return fmt.Errorf("%w: field %q is missing", ErrBadToken, k)
		}
	}
	var key *SASKey
	for i := range keys {
		if keys[i].KeyName == fields["skn"] {
			key = &keys[i]
		}
	}
	if key == nil {
		return fmt.Errorf("%w: unknown key name (skn) %q", ErrBadToken, fields["skn"])
	}
	se, err := strconv.ParseInt(fields["se"], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: expiry (se) %q is not unix seconds", ErrBadToken, fields["se"])
	}
	if !now.Before(time.Unix(se, 0)) {
		return fmt.Errorf("%w: the token expired at %s", ErrBadToken, time.Unix(se, 0).UTC().Format(time.RFC3339))
	}
	sig, err := url.QueryUnescape(fields["sig"])
	if err != nil {
		return fmt.Errorf("%w: signature (sig) is not URL-escaped: %v", ErrBadToken, err)
	}
	mac := hmac.New(sha256.New, []byte(key.Key))
	mac.Write([]byte(fields["sr"] + "\n" + fields["se"]))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return fmt.Errorf("%w: the signature does not match key %q", ErrBadToken, key.KeyName)
	}
	sr, err := url.QueryUnescape(fields["sr"])
	if err != nil {
		return fmt.Errorf("%w: resource (sr) is not URL-escaped: %v", ErrBadToken, err)
	}
	res, aud := strings.ToLower(resourcePath(sr)), strings.ToLower(audiencePath(audience))
	if res != "" && aud != res && !strings.HasPrefix(aud, strings.TrimSuffix(res, "/")+"/") {
		return fmt.Errorf("%w: the token is for %q, not %q", ErrBadToken, sr, audience)
	}
	return nil
}

// resourcePath is the entity path of a token's resource URI: "sb://host/path", "host/path"
// (no scheme, as namespace-wide tokens often are) or a bare path after a host.
func resourcePath(sr string) string {
	if _, rest, ok := strings.Cut(sr, "://"); ok {
		sr = rest
	}
	_, p, _ := strings.Cut(sr, "/")
	return strings.Trim(p, "/")
}
