// Package config turns the Functions app settings into a validated Config.
//
// Every setting is read once at start. Load reports all problems at once; each problem names the setting and
// how to fix it, and wraps ErrInvalid so callers can branch with errors.Is.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every validation error returned by Load and Validate.
var ErrInvalid = errors.New("invalid configuration")

// App setting names (see DESIGN §3).
const (
	SettingServiceBus          = "ServiceBusConnection"
	SettingServiceBusNamespace = "ServiceBusConnection__fullyQualifiedNamespace"
	SettingServiceBusClientID  = "ServiceBusConnection__clientId"
	SettingServiceBusCred      = "ServiceBusConnection__credential"
	SettingStorage             = "DeferralStorage"
	SettingStorageURI          = "DeferralStorage__tableServiceUri"
	SettingStorageClientID     = "DeferralStorage__clientId"
	SettingStorageCred         = "DeferralStorage__credential"
	SettingEntity              = "HOLDFAST_ENTITY"
	SettingTable               = "HOLDFAST_DEFERRAL_TABLE"
	SettingBatchSize           = "HOLDFAST_BATCH_SIZE"
	SettingConcurrency         = "HOLDFAST_CONCURRENCY"
	SettingRunBudget           = "HOLDFAST_RUN_BUDGET"
	SettingMaxLockRenewal      = "HOLDFAST_MAX_LOCK_RENEWAL"
	SettingLockDuration        = "HOLDFAST_LOCK_DURATION"
	SettingMessageTTL          = "HOLDFAST_MESSAGE_TTL"
	SettingProcessor           = "HOLDFAST_PROCESSOR"
	// SettingRequiresSession says the entity is session-enabled (the Bicep template sets it from its
	// requiresSession parameter): runs then accept sessions instead of receiving plain messages.
	SettingRequiresSession = "HOLDFAST_REQUIRES_SESSION"
	// SettingMaxSessions bounds the sessions a run holds at once (session-enabled entities only).
	SettingMaxSessions = "HOLDFAST_MAX_SESSIONS"
	// SettingProcessTimeout is, in standalone mode (run-once, worker, serve), how long the platform lets the
	// process live — a Container Apps job's replicaTimeout; it takes the place of functionTimeout.
	SettingProcessTimeout = "HOLDFAST_PROCESS_TIMEOUT"
	// SettingFunctionTimeout overrides host.json's functionTimeout, for the host and for the handler alike.
	SettingFunctionTimeout = "AzureFunctionsJobHost__functionTimeout"
)

// Defaults and limits.
const (
	DefaultTable           = "holdfastdeferrals"
	DefaultBatchSize       = 20
	DefaultConcurrency     = 8
	DefaultProcessor       = "demo"
	DefaultFunctionTimeout = 5 * time.Minute
	// UnboundedFunctionTimeout is assumed when host.json sets functionTimeout to -1 (Flex Consumption's default
	// is 30 min; an unbounded run would still be cut short when the instance recycles).
	UnboundedFunctionTimeout = 30 * time.Minute
	// BudgetMargin is the default gap between the run budget and the host's functionTimeout. It covers
	// SettleTimeout + CloseTimeout, which a run may still spend after its budget.
	BudgetMargin = 30 * time.Second

	// DefaultStandaloneBudget is the run budget in standalone mode without HOLDFAST_PROCESS_TIMEOUT: the same
	// as under the host's default functionTimeout.
	DefaultStandaloneBudget = DefaultFunctionTimeout - BudgetMargin

	MaxBatchSize   = 5000 // azservicebus limit for maxMessages
	MaxConcurrency = 1000
	MinRunBudget   = time.Second

	// DefaultLockDuration is the lock duration the client retries are sized for when HOLDFAST_LOCK_DURATION
	// is not set: Azure's default for a new queue or subscription (PT1M), and the Bicep template's. Unset, the
	// renewer compares LockedUntil with the local clock; set, it judges expiry on the service's clock, so the
	// setting must equal the entity's lock duration.
	DefaultLockDuration = time.Minute
	// MinLockDuration and MaxLockDuration bound HOLDFAST_LOCK_DURATION: Azure allows 5 s to 5 min; the
	// emulator's locks go down to 1 s.
	MinLockDuration = time.Second
	MaxLockDuration = 5 * time.Minute
)

// CredentialManagedIdentity is the value of <connection>__credential that selects a managed identity.
const CredentialManagedIdentity = "managedidentity"

// Connection is a key-based or identity-based connection. Exactly one of ConnectionString and Endpoint is set.
type Connection struct {
	// ConnectionString is the key-based connection string (setting <name>).
	ConnectionString string
	// Endpoint is the Service Bus fully qualified namespace (host name) or the table service URI, used with an
	// Azure AD credential (setting <name>__fullyQualifiedNamespace or <name>__tableServiceUri).
	Endpoint string
	// ClientID is the client ID of a user-assigned managed identity (<name>__clientId); empty for the default.
	ClientID string
	// Credential is "" (DefaultAzureCredential) or "managedidentity" (<name>__credential).
	Credential string
}

// IsSet reports whether either form of the connection was configured.
func (c Connection) IsSet() bool { return c.ConnectionString != "" || c.Endpoint != "" }

// Entity is the queue or topic subscription the run receives from.
type Entity struct {
	Queue        string // set for a queue
	Topic        string // set with Subscription for a topic subscription
	Subscription string
}

// String returns the entity path as written in HOLDFAST_ENTITY.
func (e Entity) String() string {
	if e.Queue != "" {
		return e.Queue
	}
	return e.Topic + "/Subscriptions/" + e.Subscription
}

// Config is the handler's configuration. The zero value is not valid; use Load, or fill it and call Validate.
type Config struct {
	ServiceBus    Connection
	Storage       Connection // optional: without it the deferral ledger is off and defer outcomes are abandoned
	Entity        Entity
	DeferralTable string
	BatchSize     int
	Concurrency   int
	// RequiresSession: the entity is session-enabled (HOLDFAST_REQUIRES_SESSION). It must match the entity:
	// Service Bus refuses a plain receiver on a session entity and a session receiver on any other.
	RequiresSession bool
	// MaxSessions is how many sessions a run holds at once on a session-enabled entity, each processing its
	// messages one at a time (HOLDFAST_MAX_SESSIONS; default Concurrency).
	MaxSessions    int
	RunBudget      time.Duration
	MaxLockRenewal time.Duration
	// Processor is the built-in processor HOLDFAST_PROCESSOR names, or "" when the program supplies its own.
	Processor string
	// Webhook configures the webhook processor; read only when Processor is "webhook".
	Webhook Webhook

	// FunctionTimeout is the limit the run must fit in. Under the Functions host it is the host's
	// functionTimeout: AzureFunctionsJobHost__functionTimeout when set, else host.json's functionTimeout, else
	// 5 min (see LoadWith). In standalone mode it is HOLDFAST_PROCESS_TIMEOUT, or 0 when that is unset: no limit
	// is known and only the budget's own minimum is checked.
	FunctionTimeout time.Duration
	// FunctionTimeoutSource names where FunctionTimeout came from, for error messages: SettingFunctionTimeout,
	// HostJSONTimeout, SettingProcessTimeout, or "" for the default.
	FunctionTimeoutSource string
	// Standalone: the handler runs outside the Functions host (run-once, worker, serve), so no functionTimeout
	// applies; see LoadOptions.Standalone.
	Standalone bool

	// LockDuration is the entity's lock duration (HOLDFAST_LOCK_DURATION), 0 when unset. The Service Bus
	// clients' retry options derive from it (lockrenew.RetryOptions; 0 sizes them for DefaultLockDuration),
	// and when set the renewer judges lock expiry with it (lockrenew.Options.LockDuration).
	LockDuration time.Duration

	// MessageTTL is the entity's default message time-to-live (HOLDFAST_MESSAGE_TTL), 0 when unset. The ledger
	// needs it for ExpiresAt: a message sent without a TTL carries none, so the SDK reports ExpiresAt equal to
	// its enqueued time, while the service expires it after the entity's default (ledger.Options.DefaultTTL).
	MessageTTL time.Duration
}

// SettingError is one invalid setting. It wraps ErrInvalid.
type SettingError struct {
	Setting string // app setting name
	Problem string // what is wrong
	Fix     string // what to do
}

func (e *SettingError) Error() string {
	msg := "config: " + e.Setting + ": " + e.Problem
	if e.Fix != "" {
		msg += " (" + e.Fix + ")"
	}
	return msg
}

// Unwrap returns ErrInvalid.
func (e *SettingError) Unwrap() error { return ErrInvalid }

// LoadOptions tunes Load. A nil *LoadOptions means defaults.
type LoadOptions struct {
	// FunctionTimeout is host.json's functionTimeout (see FunctionTimeoutFromHostJSON). Zero means 5 min. The
	// app setting AzureFunctionsJobHost__functionTimeout, when set, overrides it, as it does for the host.
	FunctionTimeout time.Duration
	// CustomProcessor: the program supplies its own processor, so HOLDFAST_PROCESSOR is not read and
	// Config.Processor is "".
	CustomProcessor bool
	// Standalone: the handler runs outside the Functions host, where no host.json functionTimeout kills it.
	// FunctionTimeout and AzureFunctionsJobHost__functionTimeout are ignored; HOLDFAST_PROCESS_TIMEOUT, when set,
	// is the limit the run budget (plus settle and close time) must fit in, and the default budget is that limit
	// minus BudgetMargin, or DefaultStandaloneBudget without it.
	Standalone bool
}

// Load reads the app settings through getenv (os.Getenv in production) with default options.
func Load(getenv func(string) string) (*Config, error) {
	return LoadWith(getenv, nil)
}

// LoadWith reads the app settings through getenv, applies defaults and validates the result. The error joins
// one *SettingError per invalid setting.
func LoadWith(getenv func(string) string, opts *LoadOptions) (*Config, error) {
	if opts == nil {
		opts = &LoadOptions{}
	}
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var errs []error
	c := &Config{
		FunctionTimeout: DefaultFunctionTimeout, // see loadFunctionTimeout
		DeferralTable:   DefaultTable,
		BatchSize:       DefaultBatchSize,
		Concurrency:     DefaultConcurrency,
		Processor:       DefaultProcessor,
	}
	if opts.Standalone {
		errs = append(errs, c.loadProcessTimeout(get))
	} else {
		errs = append(errs, c.loadFunctionTimeout(get, opts.FunctionTimeout))
	}
	c.ServiceBus = Connection{
		ConnectionString: get(SettingServiceBus), Endpoint: get(SettingServiceBusNamespace),
		ClientID: get(SettingServiceBusClientID), Credential: strings.ToLower(get(SettingServiceBusCred)),
	}
	c.Storage = Connection{
		ConnectionString: get(SettingStorage), Endpoint: get(SettingStorageURI),
		ClientID: get(SettingStorageClientID), Credential: strings.ToLower(get(SettingStorageCred)),
	}
	if v := get(SettingEntity); v != "" {
		e, err := ParseEntity(v)
		if err != nil {
			errs = append(errs, err)
		}
		c.Entity = e
	}
	if v := get(SettingTable); v != "" {
		c.DeferralTable = v
	}
	if opts.CustomProcessor {
		c.Processor = ""
	} else if v := get(SettingProcessor); v != "" {
		c.Processor = strings.ToLower(v)
	}
	errs = append(errs, parseInt(get, SettingBatchSize, &c.BatchSize), parseInt(get, SettingConcurrency, &c.Concurrency))
	errs = append(errs, parseBool(get, SettingRequiresSession, &c.RequiresSession))
	c.MaxSessions = c.Concurrency
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		c.MaxSessions = DefaultConcurrency // the invalid concurrency is reported once, under its own name
	}
	errs = append(errs, parseInt(get, SettingMaxSessions, &c.MaxSessions))
	c.RunBudget = c.FunctionTimeout - BudgetMargin
	if c.Standalone && c.FunctionTimeout == 0 {
		c.RunBudget = DefaultStandaloneBudget
	}
	errs = append(errs, parseDuration(get, SettingRunBudget, &c.RunBudget))
	c.MaxLockRenewal = c.RunBudget
	errs = append(errs, parseDuration(get, SettingMaxLockRenewal, &c.MaxLockRenewal))
	if c.Processor == "webhook" {
		errs = append(errs, c.loadWebhook(get))
	}
	errs = append(errs, parseDuration(get, SettingLockDuration, &c.LockDuration))
	errs = append(errs, parseDuration(get, SettingMessageTTL, &c.MessageTTL))
	// A setting that failed to parse keeps its default, so Validate does not report it again; an invalid
	// entity is reported by both, so duplicates are dropped.
	errs = append(errs, c.Validate())
	if err := joinUnique(errs); err != nil {
		return nil, err
	}
	return c, nil
}

// joinUnique joins errs, flattening joined errors and dropping repeated messages.
func joinUnique(errs []error) error {
	seen := map[string]bool{}
	var out []error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	for _, err := range errs {
		walk(err)
	}
	return errors.Join(out...)
}

func parseInt(get func(string) string, name string, dst *int) error {
	v := get(name)
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return &SettingError{Setting: name, Problem: fmt.Sprintf("%q is not a whole number", v), Fix: "use e.g. " + strconv.Itoa(*dst)}
	}
	*dst = n
	return nil
}

func parseBool(get func(string) string, name string, dst *bool) error {
	v := get(name)
	if v == "" {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return &SettingError{Setting: name, Problem: fmt.Sprintf("%q is not true or false", v), Fix: `use "true" for a session-enabled entity, else "false"`}
	}
	*dst = b
	return nil
}

func parseDuration(get func(string) string, name string, dst *time.Duration) error {
	v := get(name)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return &SettingError{Setting: name, Problem: fmt.Sprintf("%q is not a Go duration", v), Fix: `use e.g. "4m30s"`}
	}
	*dst = d
	return nil
}

// Validate checks every field and returns one *SettingError per problem, joined.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validateServiceBus(c.ServiceBus))
	add(validateStorage(c.Storage))
	add(validateEntity(c.Entity))
	add(ValidateTableName(c.DeferralTable))
	add(intRange(SettingBatchSize, c.BatchSize, 1, MaxBatchSize))
	add(intRange(SettingConcurrency, c.Concurrency, 1, MaxConcurrency))
	add(intRange(SettingMaxSessions, c.MaxSessions, 1, MaxConcurrency))
	add(c.validateBudget())
	if c.MaxLockRenewal <= 0 {
		add(&SettingError{Setting: SettingMaxLockRenewal, Problem: fmt.Sprintf("%v is not positive", c.MaxLockRenewal),
			Fix: "use a positive duration, normally the run budget"})
	}
	if c.LockDuration != 0 && (c.LockDuration < MinLockDuration || c.LockDuration > MaxLockDuration) { // 0: unset
		add(&SettingError{Setting: SettingLockDuration, Problem: fmt.Sprintf("%v is out of range", c.LockDuration),
			Fix: fmt.Sprintf("use the entity's lock duration, %v to %v (Azure allows 5s to 5m)", MinLockDuration, MaxLockDuration)})
	}
	if c.MessageTTL < 0 {
		add(&SettingError{Setting: SettingMessageTTL, Problem: fmt.Sprintf("%v is negative", c.MessageTTL),
			Fix: "use the entity's default message time-to-live, or leave it unset"})
	}
	add(c.validateProcessor())
	return errors.Join(errs...)
}

func intRange(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return &SettingError{Setting: name, Problem: fmt.Sprintf("%d is out of range", v), Fix: fmt.Sprintf("use %d to %d", lo, hi)}
	}
	return nil
}

func (c *Config) validateProcessor() error {
	switch c.Processor {
	case "demo", "":
		return nil
	case "webhook":
		return c.validateWebhook()
	default:
		return &SettingError{Setting: SettingProcessor, Problem: fmt.Sprintf("unknown processor %q", c.Processor), Fix: `use "demo" or "webhook"`}
	}
}

func validateServiceBus(c Connection) error {
	switch {
	case c.ConnectionString != "" && c.Endpoint != "":
		return &SettingError{Setting: SettingServiceBus, Problem: "both " + SettingServiceBus + " and " + SettingServiceBusNamespace + " are set",
			Fix: "set only one: the connection string, or the namespace for an Azure AD identity"}
	case c.ConnectionString != "":
		return validateSBConnectionString(c.ConnectionString)
	case c.Endpoint != "":
		if err := validateHostName(SettingServiceBusNamespace, c.Endpoint); err != nil {
			return err
		}
		return validateCredential(SettingServiceBusCred, c.Credential)
	default:
		return &SettingError{Setting: SettingServiceBus, Problem: "not set",
			Fix: "set " + SettingServiceBus + " to a connection string, or " + SettingServiceBusNamespace + " to <namespace>.servicebus.windows.net"}
	}
}

func validateCredential(name, v string) error {
	if v == "" || v == CredentialManagedIdentity {
		return nil
	}
	return &SettingError{Setting: name, Problem: fmt.Sprintf("unknown credential %q", v), Fix: `use "managedidentity" or leave it unset for DefaultAzureCredential`}
}

// connStringFields splits "Key=Value;Key=Value" into a map with lower-case keys.
func connStringFields(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}

func validateSBConnectionString(s string) error {
	f := connStringFields(s)
	ep := f["endpoint"]
	if ep == "" {
		return &SettingError{Setting: SettingServiceBus, Problem: "connection string has no Endpoint", Fix: "use Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…"}
	}
	u, err := url.Parse(ep)
	if err != nil || u.Scheme != "sb" || u.Host == "" {
		return &SettingError{Setting: SettingServiceBus, Problem: fmt.Sprintf("Endpoint %q is not an sb:// URL", ep), Fix: "use Endpoint=sb://<host>[:port]/"}
	}
	if f["sharedaccesskeyname"] == "" && f["sharedaccesssignature"] == "" {
		return &SettingError{Setting: SettingServiceBus, Problem: "connection string has neither SharedAccessKeyName nor SharedAccessSignature",
			Fix: "copy the full connection string from the namespace's shared access policy"}
	}
	return nil
}

func validateHostName(name, v string) error {
	if strings.Contains(v, "://") || strings.ContainsAny(v, "/ ;") || !strings.Contains(v, ".") {
		return &SettingError{Setting: name, Problem: fmt.Sprintf("%q is not a host name", v), Fix: "use the bare host, e.g. mynamespace.servicebus.windows.net"}
	}
	return nil
}

func validateStorage(c Connection) error {
	switch {
	case c.ConnectionString != "" && c.Endpoint != "":
		return &SettingError{Setting: SettingStorage, Problem: "both " + SettingStorage + " and " + SettingStorageURI + " are set", Fix: "set only one"}
	case c.ConnectionString != "":
		f := connStringFields(c.ConnectionString)
		if strings.EqualFold(f["usedevelopmentstorage"], "true") {
			return &SettingError{Setting: SettingStorage, Problem: "UseDevelopmentStorage=true is not accepted by the table client",
				Fix: "use Azurite's full connection string: DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=…;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"}
		}
		if f["accountname"] == "" && f["tableendpoint"] == "" {
			return &SettingError{Setting: SettingStorage, Problem: "connection string has neither AccountName nor TableEndpoint",
				Fix: "copy the storage account's connection string"}
		}
		return nil
	case c.Endpoint != "":
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return &SettingError{Setting: SettingStorageURI, Problem: fmt.Sprintf("%q is not an http(s) URL", c.Endpoint), Fix: "use https://<account>.table.core.windows.net/"}
		}
		return validateCredential(SettingStorageCred, c.Credential)
	}
	return nil
}
