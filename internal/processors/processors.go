// Package processors holds the built-in processors selected by HOLDFAST_PROCESSOR.
package processors

import (
	"errors"
	"fmt"

	"github.com/holdfast-dev/holdfast/internal/config"
	"github.com/holdfast-dev/holdfast/processor"
)

// ErrUnknown is returned by New for a processor name it does not provide.
var ErrUnknown = errors.New("processors: unknown processor")

// New returns the built-in processor called name (HOLDFAST_PROCESSOR), configured from cfg, which may be nil
// for "demo".
func New(name string, cfg *config.Config) (processor.Processor, error) {
	switch name {
	case "demo":
		return NewDemo(nil), nil
	case "webhook":
		return nil, fmt.Errorf("%w %q: not available in this version (%s)", ErrUnknown, name, config.SettingProcessor)
	default:
		return nil, fmt.Errorf("%w %q (%s: use \"demo\")", ErrUnknown, name, config.SettingProcessor)
	}
}
