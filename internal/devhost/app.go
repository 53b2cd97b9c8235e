package devhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrConfig is wrapped by every error about the function app's files (host.json, function.json,
// local.settings.json) or the settings they reference. Callers branch on it with errors.Is.
var ErrConfig = errors.New("devhost: invalid function app")

// hostFile is the subset of host.json the dev host reads.
type hostFile struct {
	Version         string          `json:"version"`
	FunctionTimeout string          `json:"functionTimeout"`
	CustomHandler   *customHandler  `json:"customHandler"`
	HTTPWorker      *customHandler  `json:"httpWorker"` // deprecated name; customHandler wins
	Extensions      json.RawMessage `json:"extensions"`
}

type customHandler struct {
	Description struct {
		DefaultExecutablePath string   `json:"defaultExecutablePath"`
		WorkingDirectory      string   `json:"workingDirectory"`
		Arguments             []string `json:"arguments"`
	} `json:"description"`
	EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
	EnableProxyingHTTPRequest   bool `json:"enableProxyingHttpRequest"`
}

// binding is one entry of function.json "bindings".
type binding struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Direction    string   `json:"direction"`
	Schedule     string   `json:"schedule"`
	RunOnStartup bool     `json:"runOnStartup"`
	UseMonitor   *bool    `json:"useMonitor"`
	AuthLevel    string   `json:"authLevel"`
	Methods      []string `json:"methods"`
	Route        *string  `json:"route"`
}

type functionFile struct {
	Bindings []binding `json:"bindings"`
	Disabled bool      `json:"disabled"`
}

// settingsFile is local.settings.json.
type settingsFile struct {
	IsEncrypted bool              `json:"IsEncrypted"`
	Values      map[string]string `json:"Values"`
}

// app is the loaded function app: the resolved custom handler launch and one entry per function.
// It is immutable after loadApp returns.
type app struct {
	root             string // absolute script root
	executable       string // absolute path of the handler binary
	workingDir       string // absolute working directory of the handler
	args             []string
	forwardHTTP      bool
	functionTimeout  time.Duration // 0 = unbounded
	routePrefix      string
	timers           []*timerFunc
	https            []*httpFunc
	env              []string // environment for the handler (without the port variables)
	settingsSkipped  []string // Values keys ignored because the process environment defines them
	settingsFileUsed string   // "" when no local.settings.json was found
	workerRuntime    string   // FUNCTIONS_WORKER_RUNTIME as resolved
}

type timerFunc struct {
	name         string
	binding      string // binding name, e.g. "timer"
	scheduleText string // after %Setting% substitution
	schedule     schedule
	runOnStartup bool
	monitor      bool // false ⇒ ScheduleStatus is null
}

type httpFunc struct {
	name      string
	methods   map[string]bool // upper case; empty = every method
	route     *route
	authLevel string
	forward   bool // exactly one httpTrigger in and one http out, and forwarding enabled
}

// defaultFunctionTimeout is what the host uses when host.json has no functionTimeout on plans that
// allow it (Flex, Premium, Dedicated); Consumption uses 5 min.
const defaultFunctionTimeout = 30 * time.Minute

// loadApp reads the function app under root. settingsPath may be "" (no settings file) and environ
// is the dev host's own process environment, which wins over local.settings.json Values as with
// `func start`.
func loadApp(root, settingsPath string, environ []string) (*app, error) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("%w: script root %q: %w", ErrConfig, root, err)
	}
	a := &app{root: absRoot}

	values, used, err := readSettings(settingsPath)
	if err != nil {
		return nil, err
	}
	a.settingsFileUsed = used
	env, skipped := mergeEnv(environ, values)
	a.env, a.settingsSkipped = env, skipped
	lookup := envLookup(env)
	a.workerRuntime, _ = lookup("FUNCTIONS_WORKER_RUNTIME")

	var hf hostFile
	if err := readJSON(filepath.Join(absRoot, "host.json"), &hf); err != nil {
		return nil, err
	}
	if err := a.applyHost(&hf, lookup); err != nil {
		return nil, err
	}
	if err := a.loadFunctions(lookup); err != nil {
		return nil, err
	}
	return a, nil
}

func readSettings(path string) (map[string]string, string, error) {
	if path == "" {
		return nil, "", nil
	}
	var sf settingsFile
	if err := readJSON(path, &sf); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", nil
		}
		return nil, "", err
	}
	if sf.IsEncrypted {
		return nil, "", fmt.Errorf("%w: %s: IsEncrypted is true; the dev host reads only plain-text Values", ErrConfig, path)
	}
	return sf.Values, path, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	return nil
}

// mergeEnv returns environ plus every Value whose name environ does not define (the process
// environment wins, as with `func start`), and the names of the Values it skipped.
func mergeEnv(environ []string, values map[string]string) (env, skipped []string) {
	have := make(map[string]bool, len(environ))
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok {
			have[k] = true
		}
	}
	env = append(env, environ...)
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if have[k] {
			skipped = append(skipped, k)
			continue
		}
		env = append(env, k+"="+values[k])
	}
	return env, skipped
}

func envLookup(env []string) func(string) (string, bool) {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v // later entries win, as with os/exec
		}
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// expandSettings replaces every %Name% in s with the app setting Name. An unknown setting or an
// unterminated % is an error naming it; "%%" is not special.
func expandSettings(s string, lookup func(string) (string, bool)) (string, error) {
	var out strings.Builder
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			out.WriteString(s)
			return out.String(), nil
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			return "", fmt.Errorf("unterminated %%Setting%% reference in %q", s)
		}
		name := s[i+1 : i+1+j]
		v, ok := lookup(name)
		if !ok || name == "" {
			return "", fmt.Errorf("app setting %q referenced as %%%s%% is not defined (add it to local.settings.json Values or the environment)", name, name)
		}
		out.WriteString(s[:i])
		out.WriteString(v)
		s = s[i+2+j:]
	}
}

// Settings that override host.json, as the host reads them (AzureFunctionsJobHost__<path>).
const (
	overrideExecutable = "AzureFunctionsJobHost__customHandler__description__defaultExecutablePath"
	overrideTimeout    = "AzureFunctionsJobHost__functionTimeout"
)

func (a *app) applyHost(hf *hostFile, lookup func(string) (string, bool)) error {
	ch := hf.CustomHandler
	if ch == nil {
		ch = hf.HTTPWorker
	}
	if ch == nil {
		return fmt.Errorf("%w: host.json: customHandler section is missing", ErrConfig)
	}
	exe := ch.Description.DefaultExecutablePath
	if v, ok := lookup(overrideExecutable); ok && v != "" {
		exe = v
	}
	if exe == "" {
		return fmt.Errorf("%w: host.json: customHandler.description.defaultExecutablePath is empty", ErrConfig)
	}
	a.workingDir = resolvePath(a.root, ch.Description.WorkingDirectory)
	a.executable = resolvePath(a.workingDir, exe)
	for i, arg := range ch.Description.Arguments {
		v, err := expandSettings(arg, lookup)
		if err != nil {
			return fmt.Errorf("%w: host.json: customHandler.description.arguments[%d]: %w", ErrConfig, i, err)
		}
		a.args = append(a.args, v)
	}
	a.forwardHTTP = ch.EnableForwardingHTTPRequest || ch.EnableProxyingHTTPRequest

	timeout := hf.FunctionTimeout
	if v, ok := lookup(overrideTimeout); ok && v != "" {
		timeout = v
	}
	d, err := parseFunctionTimeout(timeout)
	if err != nil {
		return fmt.Errorf("%w: host.json: functionTimeout: %w", ErrConfig, err)
	}
	a.functionTimeout = d

	a.routePrefix = "api"
	if len(hf.Extensions) > 0 {
		var ext struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		}
		if err := json.Unmarshal(hf.Extensions, &ext); err != nil {
			return fmt.Errorf("%w: host.json: extensions: %w", ErrConfig, err)
		}
		if ext.HTTP.RoutePrefix != nil {
			a.routePrefix = strings.Trim(*ext.HTTP.RoutePrefix, "/")
		}
	}
	return nil
}

func resolvePath(base, p string) string {
	if p == "" {
		return base
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// parseFunctionTimeout parses host.json's functionTimeout ("hh:mm:ss", optionally "d.hh:mm:ss"); ""
// means the default and "-1" means unbounded (returned as 0).
func parseFunctionTimeout(s string) (time.Duration, error) {
	switch strings.TrimSpace(s) {
	case "":
		return defaultFunctionTimeout, nil
	case "-1":
		return 0, nil
	}
	d, err := parseTimeSpan(s)
	if err != nil {
		return 0, err
	}
	if d < 0 { // any negative TimeSpan is unbounded, as for the handler (config.UnboundedFunctionTimeout)
		return 0, nil
	}
	if d < time.Second {
		return 0, fmt.Errorf("%q is below the minimum of 00:00:01", s)
	}
	return d, nil
}

// loadFunctions reads every <root>/<Name>/function.json. Folders without function.json are ignored,
// as the host does.
func (a *app) loadFunctions(lookup func(string) (string, bool)) error {
	entries, err := os.ReadDir(a.root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(a.root, e.Name(), "function.json")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		var ff functionFile
		if err := readJSON(path, &ff); err != nil {
			return err
		}
		if ff.Disabled {
			continue
		}
		if err := a.addFunction(e.Name(), &ff, lookup); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
		}
	}
	if len(a.timers)+len(a.https) == 0 {
		return fmt.Errorf("%w: no functions found: %s has no <Name>/function.json with a timerTrigger or httpTrigger", ErrConfig, a.root)
	}
	return nil
}

func (a *app) addFunction(name string, ff *functionFile, lookup func(string) (string, bool)) error {
	var trigger *binding
	var httpOut int
	for i := range ff.Bindings {
		b := &ff.Bindings[i]
		switch {
		case strings.EqualFold(b.Type, "timerTrigger"), strings.EqualFold(b.Type, "httpTrigger"):
			if trigger != nil {
				return fmt.Errorf("more than one trigger binding")
			}
			trigger = b
		case strings.EqualFold(b.Type, "http") && strings.EqualFold(b.Direction, "out"):
			httpOut++
		default:
			return fmt.Errorf("binding %q of type %q is not supported by the dev host (only timerTrigger, httpTrigger and http out)", b.Name, b.Type)
		}
	}
	if trigger == nil {
		return fmt.Errorf("no timerTrigger or httpTrigger binding")
	}
	if trigger.Name == "" {
		return fmt.Errorf("trigger binding has no name")
	}
	if strings.EqualFold(trigger.Type, "timerTrigger") {
		t, err := newTimerFunc(name, trigger, lookup)
		if err != nil {
			return err
		}
		a.timers = append(a.timers, t)
		return nil
	}
	h, err := newHTTPFunc(name, trigger, a.routePrefix)
	if err != nil {
		return err
	}
	h.forward = a.forwardHTTP && httpOut == 1
	a.https = append(a.https, h)
	return nil
}

func newTimerFunc(name string, b *binding, lookup func(string) (string, bool)) (*timerFunc, error) {
	text, err := expandSettings(b.Schedule, lookup)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	s, err := parseSchedule(text)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", b.Schedule, err)
	}
	t := &timerFunc{name: name, binding: b.Name, scheduleText: text, schedule: s, runOnStartup: b.RunOnStartup}
	t.monitor = (b.UseMonitor == nil || *b.UseMonitor) && !firesMoreThanOncePerMinute(s, time.Now().UTC())
	return t, nil
}

func newHTTPFunc(name string, b *binding, prefix string) (*httpFunc, error) {
	tmpl := name
	if b.Route != nil && strings.TrimSpace(*b.Route) != "" {
		tmpl = *b.Route
	}
	if prefix != "" {
		tmpl = prefix + "/" + strings.TrimLeft(tmpl, "/")
	}
	r, err := parseRoute(tmpl)
	if err != nil {
		return nil, fmt.Errorf("route: %w", err)
	}
	h := &httpFunc{name: name, route: r, authLevel: b.AuthLevel, methods: map[string]bool{}}
	for _, m := range b.Methods {
		h.methods[strings.ToUpper(strings.TrimSpace(m))] = true
	}
	return h, nil
}
