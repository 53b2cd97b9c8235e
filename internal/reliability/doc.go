// Package reliability holds holdfast's reliability matrix, a test suite and nothing else: processor behaviours
// (fast, 3× the lock, 10× the lock, hangs past the budget, panics, errors) × emulator faults (renewals failing
// transiently, a renewal answered lock-lost, connections dropped mid-run, management replies slower than the
// renewal lead, idle links detached, Table Storage down during a defer) × crash points (each step of a defer
// and of a resubmission). Every cell runs the real run, ledger and drain against the in-process emulator
// through the azservicebus SDK and against Azurite through aztables, then checks the end state of every
// message and that each run's summary matches the emulator's counters.
//
// The same matrix runs on a session-enabled queue (session runs, HOLDFAST_REQUIRES_SESSION), its messages in
// two sessions, with one more fault (a session's lock expiring mid-run) and the session invariants checked on
// top: a session's messages are processed one at a time and completed in sequence order, the message in
// progress when its session's lock is lost is told so, and nothing later in the session is completed before
// it is delivered again.
//
// `make test` runs a CI-sized selection that covers every value of every axis once; `make reliability` runs
// the whole matrix and prints it as a table (go test ./internal/reliability -run TestReliability -v -args
// -reliability.full).
package reliability
