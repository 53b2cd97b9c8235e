// Package processors holds the built-in processors selected by HOLDFAST_PROCESSOR: demo and webhook.
package processors

import (
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/processor"
)

// ErrUnknown is returned by New for a processor name it does not provide.
var ErrUnknown = errors.New("processors: unknown processor")

// New returns the built-in processor called name (HOLDFAST_PROCESSOR), configured from cfg, which may be nil
// for "demo". It does no network I/O (the webhook's token, if any, is fetched with the first request).
func New(name string, cfg *config.Config) (processor.Processor, error) {
	switch name {
	case "demo":
		return NewDemo(nil), nil
	case "webhook":
		if cfg == nil {
			return nil, errors.New("processors: the webhook processor needs the configuration")
		}
		return newWebhookFromConfig(cfg.Webhook)
	default:
		return nil, fmt.Errorf("%w %q (%s: use \"demo\" or \"webhook\")", ErrUnknown, name, config.SettingProcessor)
	}
}

func newWebhookFromConfig(c config.Webhook) (*Webhook, error) {
	headers, err := config.ParseWebhookHeaders(c.Headers, c.Audience != "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", config.SettingWebhookHeaders, err)
	}
	opts := &WebhookOptions{URL: c.URL, Timeout: c.Timeout, Headers: headers}
	if c.Audience != "" {
		// The app's identity: DefaultAzureCredential uses the managed identity in Azure (AZURE_CLIENT_ID names
		// the user-assigned one the template creates) and a developer's sign-in locally.
		var cred azcore.TokenCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("%s: credential: %w", config.SettingWebhookAudience, err)
		}
		opts.Credential, opts.Scope = cred, c.Scope()
	}
	w, err := NewWebhook(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", config.SettingWebhookURL, err)
	}
	return w, nil
}
