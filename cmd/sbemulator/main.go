// Command sbemulator runs the holdfast Service Bus emulator: an AMQP 1.0 server that the unmodified
// azservicebus SDK talks to. It prints the connection string, then logs JSON, on stdout, and stops
// cleanly on SIGINT or SIGTERM.
//
//	sbemulator -addr localhost:5672 -config Config.json -admin-addr localhost:5300 -log-level info
//
// -admin-addr serves the admin HTTP API (entities, stats, faults; see emulator/README.md) to
// loopback clients; -strict-auth makes the emulator validate SAS tokens against -key-name/-key and
// the Config.json's SharedAccessPolicies, enforcing their rights; -link-idle-timeout,
// -connection-idle-timeout and -connection-open-timeout shorten (or, with 0, turn off) the
// service's 10-minute, 5-minute and 1-minute idle rules.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/holdfast-dev/holdfast/emulator"
	"github.com/holdfast-dev/holdfast/emulator/broker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sbemulator:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sbemulator", flag.ContinueOnError)
	addr := fs.String("addr", "localhost:5672", "TCP address to listen on")
	configPath := fs.String("config", "", "path to a Config.json describing the entities (empty: none)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	adminAddr := fs.String("admin-addr", "", "address of the admin HTTP API, e.g. localhost:5300 (empty: off); serves loopback clients only")
	strict := fs.Bool("strict-auth", false, "validate SAS tokens against -key-name/-key and answer 401 otherwise")
	keyName := fs.String("key-name", emulator.DefaultKeyName, "shared access key name of the printed connection string")
	key := fs.String("key", emulator.DefaultKey, "shared access key of the printed connection string")
	linkIdle := fs.Duration("link-idle-timeout", emulator.DefaultLinkIdleTimeout, "detach links idle this long, as Service Bus does (0: never)")
	connIdle := fs.Duration("connection-idle-timeout", emulator.DefaultConnectionIdleTimeout, "close a connection this long after its last link closed (0: never)")
	connOpen := fs.Duration("connection-open-timeout", emulator.DefaultConnectionOpenTimeout, "close a connection that attaches no link within this (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{{"link-idle-timeout", linkIdle}, {"connection-idle-timeout", connIdle}, {"connection-open-timeout", connOpen}} {
		switch {
		case *d.v < 0:
			return fmt.Errorf("-%s %s: must not be negative (0 turns it off)", d.name, *d.v)
		case *d.v == 0:
			*d.v = -1 // emulator.Options: negative is off, zero the default
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: lvl}))

	var cfg *broker.Config
	if *configPath != "" {
		c, err := broker.LoadConfig(*configPath)
		if err != nil {
			return fmt.Errorf("-config: %w", err)
		}
		cfg = c
	}
	srv, err := emulator.Start(&emulator.Options{
		Addr: *addr, Config: cfg, Logger: log, AdminAddr: *adminAddr,
		StrictAuth: *strict, KeyName: *keyName, Key: *key,
		LinkIdleTimeout: *linkIdle, ConnectionIdleTimeout: *connIdle, ConnectionOpenTimeout: *connOpen,
	})
	if err != nil {
		return err
	}
	fmt.Println(srv.ConnectionString())
	if a := srv.AdminAddr(); a != "" {
		log.Info("admin API", "url", "http://"+a)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down")
	return srv.Close()
}
