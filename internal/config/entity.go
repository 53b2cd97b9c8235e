package config

import (
	"fmt"
	"strings"
)

// ParseEntity parses HOLDFAST_ENTITY: a queue name, or "<topic>/Subscriptions/<subscription>".
func ParseEntity(v string) (Entity, error) {
	parts := strings.Split(v, "/")
	if len(parts) == 3 && strings.EqualFold(parts[1], "Subscriptions") {
		e := Entity{Topic: parts[0], Subscription: parts[2]}
		return e, validateEntity(e)
	}
	for _, p := range parts[1:] {
		if strings.EqualFold(p, "Subscriptions") {
			return Entity{Queue: v}, &SettingError{Setting: SettingEntity, Problem: fmt.Sprintf("%q is not <topic>/Subscriptions/<subscription>", v),
				Fix: "use e.g. orders/Subscriptions/billing"}
		}
	}
	e := Entity{Queue: v}
	return e, validateEntity(e)
}

func validateEntity(e Entity) error {
	switch {
	case e.Queue == "" && e.Topic == "" && e.Subscription == "":
		return &SettingError{Setting: SettingEntity, Problem: "not set", Fix: "set it to a queue name or <topic>/Subscriptions/<subscription>"}
	case e.Queue != "" && (e.Topic != "" || e.Subscription != ""):
		return &SettingError{Setting: SettingEntity, Problem: "both a queue and a topic subscription are set", Fix: "set one"}
	case e.Queue != "":
		return validateEntityName("queue", e.Queue, 260, true)
	}
	if e.Topic == "" || e.Subscription == "" {
		return &SettingError{Setting: SettingEntity, Problem: "topic subscription needs both a topic and a subscription name",
			Fix: "use <topic>/Subscriptions/<subscription>"}
	}
	if err := validateEntityName("topic", e.Topic, 260, false); err != nil {
		return err
	}
	return validateEntityName("subscription", e.Subscription, 50, false)
}

// validateEntityName applies Service Bus naming rules: letters, digits, '.', '-', '_' (and '/' in queue
// paths), starting and ending with a letter or digit.
func validateEntityName(kind, name string, maxLen int, slash bool) error {
	bad := func(problem string) error {
		return &SettingError{Setting: SettingEntity, Problem: fmt.Sprintf("%s name %q %s", kind, name, problem),
			Fix: "use letters, digits, '.', '-' and '_', starting and ending with a letter or digit"}
	}
	if name == "" {
		return bad("is empty")
	}
	if len(name) > maxLen {
		return bad(fmt.Sprintf("is longer than %d characters", maxLen))
	}
	if !isAlnum(rune(name[0])) || !isAlnum(rune(name[len(name)-1])) {
		return bad("must start and end with a letter or digit")
	}
	for _, r := range name {
		if !isAlnum(r) && r != '.' && r != '-' && r != '_' && !(slash && r == '/') {
			return bad(fmt.Sprintf("contains %q", r))
		}
	}
	return nil
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// ValidateTableName checks an Azure Table name: 3–63 letters and digits, starting with a letter, not "tables".
func ValidateTableName(name string) error {
	bad := func(problem string) error {
		return &SettingError{Setting: SettingTable, Problem: fmt.Sprintf("table name %q %s", name, problem),
			Fix: "use 3 to 63 letters and digits starting with a letter, e.g. " + DefaultTable}
	}
	if len(name) < 3 || len(name) > 63 {
		return bad("must be 3 to 63 characters long")
	}
	if !isAlnum(rune(name[0])) || (name[0] >= '0' && name[0] <= '9') {
		return bad("must start with a letter")
	}
	for _, r := range name {
		if !isAlnum(r) {
			return bad(fmt.Sprintf("contains %q", r))
		}
	}
	if strings.EqualFold(name, "tables") {
		return bad("is reserved")
	}
	return nil
}
