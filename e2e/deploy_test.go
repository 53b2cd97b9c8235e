package e2e

import (
	"context"
	"testing"
	"time"
)

// The template's Flex settings for functionTimeoutMinutes=30 start the handler and let it run: the app setting
// AzureFunctionsJobHost__functionTimeout overrides the packaged host.json (10 min) for the handler as it does
// for the host. Before, the handler compared its 29m30s budget with host.json's 10 minutes and exited with
// status 2 at every start.
func TestTemplateTimeoutSettingsStartTheHandler(t *testing.T) {
	st := startStack(t, map[string]string{
		"AzureFunctionsJobHost__functionTimeout": "00:30:00",
		"HOLDFAST_RUN_BUDGET":                    "29m30s",
		"HOLDFAST_MAX_LOCK_RENEWAL":              "29m30s",
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, sum := st.runTimer(ctx, t); sum.Received != 0 {
		t.Errorf("run over an empty queue received %d", sum.Received)
	}
}
