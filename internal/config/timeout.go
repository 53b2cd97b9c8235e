package config

import (
	"fmt"
	"time"
)

// HostJSONTimeout names host.json's functionTimeout in messages.
const HostJSONTimeout = "host.json functionTimeout"

// What a run may still spend after its budget, before the handler answers the invocation: settling (abandoning)
// what it holds, then closing its receivers. The run package uses these as its bounds; validation requires
// RunBudget + SettleTimeout + CloseTimeout ≤ FunctionTimeout, because at functionTimeout the host kills the
// handler process, and a run killed mid-abandon leaves its messages locked until their locks expire.
const (
	// SettleTimeout bounds each settlement call, and all settlement ends by the run deadline + SettleTimeout.
	SettleTimeout = 15 * time.Second
	// CloseTimeout bounds closing a run's receivers once settlement is over.
	CloseTimeout = 10 * time.Second
)

// loadFunctionTimeout sets FunctionTimeout the way the Functions host resolves it: the app setting
// AzureFunctionsJobHost__functionTimeout overrides host.json (docs: functions-app-settings
// "AzureFunctionsJobHost__*"; functions-host-json "Override host.json values"), and without either the
// Consumption default of 5 min is assumed. fromHostJSON is host.json's value, 0 when it has none.
func (c *Config) loadFunctionTimeout(get func(string) string, fromHostJSON time.Duration) error {
	c.FunctionTimeout, c.FunctionTimeoutSource = DefaultFunctionTimeout, ""
	if fromHostJSON > 0 {
		c.FunctionTimeout, c.FunctionTimeoutSource = fromHostJSON, HostJSONTimeout
	}
	v := get(SettingFunctionTimeout)
	if v == "" {
		return nil
	}
	d, err := parseFunctionTimeout(v)
	if err != nil {
		return &SettingError{Setting: SettingFunctionTimeout, Problem: err.Error(), Fix: `use hh:mm:ss, e.g. "00:30:00", or "-1" for unbounded`}
	}
	c.FunctionTimeout, c.FunctionTimeoutSource = d, SettingFunctionTimeout
	return nil
}

// parseFunctionTimeout parses a functionTimeout value: a TimeSpan ("hh:mm:ss", "d.hh:mm:ss") or "-1"
// (unbounded, taken as UnboundedFunctionTimeout). Zero is refused: the host's minimum is one second.
func parseFunctionTimeout(s string) (time.Duration, error) {
	d, err := ParseTimeSpan(s)
	if err != nil {
		return 0, err
	}
	switch {
	case d < 0:
		return UnboundedFunctionTimeout, nil
	case d < time.Second:
		return 0, fmt.Errorf("%q is below the minimum of 00:00:01: %w", s, ErrInvalid)
	}
	return d, nil
}

// loadProcessTimeout sets FunctionTimeout in standalone mode: HOLDFAST_PROCESS_TIMEOUT (a Go duration) when
// set, else 0 (no known limit). host.json and AzureFunctionsJobHost__functionTimeout are not read: no host
// enforces them.
func (c *Config) loadProcessTimeout(get func(string) string) error {
	c.Standalone, c.FunctionTimeout, c.FunctionTimeoutSource = true, 0, ""
	v := get(SettingProcessTimeout)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return &SettingError{Setting: SettingProcessTimeout, Problem: fmt.Sprintf("%q is not a positive Go duration", v),
			Fix: `use the platform's limit on the process, e.g. "30m" for a Container Apps job's replicaTimeout of 1800, or leave it unset`}
	}
	c.FunctionTimeout, c.FunctionTimeoutSource = d, SettingProcessTimeout
	return nil
}

// timeoutName names the functionTimeout in effect for messages, with its value's origin.
func (c *Config) timeoutName() string {
	switch c.FunctionTimeoutSource {
	case SettingFunctionTimeout, SettingProcessTimeout:
		return c.FunctionTimeoutSource
	case HostJSONTimeout:
		return HostJSONTimeout + " (no " + SettingFunctionTimeout + " set)"
	default:
		return "the default functionTimeout (neither " + SettingFunctionTimeout + " nor host.json sets one)"
	}
}

// validateBudget checks that a run ends, settlement and receiver close included, before the host's
// functionTimeout kills the handler: RunBudget + SettleTimeout + CloseTimeout ≤ FunctionTimeout.
func (c *Config) validateBudget() error {
	timeout := c.FunctionTimeout
	if c.Standalone && timeout <= 0 { // no known limit: only the budget's own minimum
		return c.validateBudgetMinimum()
	}
	if timeout <= 0 {
		timeout = DefaultFunctionTimeout
	}
	limit := SettingFunctionTimeout
	if c.Standalone {
		limit = SettingProcessTimeout
	}
	most := timeout - SettleTimeout - CloseTimeout
	switch {
	case most < MinRunBudget:
		return &SettingError{Setting: limit,
			Problem: fmt.Sprintf("the limit %v from %s leaves no time for a run (%v budget, %v settle timeout, %v receiver close timeout)",
				timeout, c.timeoutName(), MinRunBudget, SettleTimeout, CloseTimeout),
			Fix: fmt.Sprintf("set %s to at least %v", limit, MinRunBudget+SettleTimeout+CloseTimeout)}
	case c.RunBudget < MinRunBudget:
		return c.validateBudgetMinimum()
	case c.RunBudget > most:
		return &SettingError{Setting: SettingRunBudget,
			Problem: fmt.Sprintf("%v plus the %v settle timeout and the %v receiver close timeout is %v, longer than the limit %v from %s: the handler would be killed while it abandons messages",
				c.RunBudget, SettleTimeout, CloseTimeout, c.RunBudget+SettleTimeout+CloseTimeout, timeout, c.timeoutName()),
			Fix: fmt.Sprintf("set %s to at most %v, or raise %s", SettingRunBudget, most, limit)}
	}
	return nil
}

// validateBudgetMinimum checks the budget's own lower bound.
func (c *Config) validateBudgetMinimum() error {
	if c.RunBudget >= MinRunBudget {
		return nil
	}
	return &SettingError{Setting: SettingRunBudget, Problem: fmt.Sprintf("%v is shorter than %v", c.RunBudget, MinRunBudget),
		Fix: fmt.Sprintf("use at least %v, normally the platform's limit minus %v", MinRunBudget, BudgetMargin)}
}
