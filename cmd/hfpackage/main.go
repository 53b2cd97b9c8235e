// Command hfpackage builds the function app's deployment package (make package): it stages host.json, the
// function folders and the linux/amd64 handler in bin/package and writes bin/holdfast.zip with Unix
// permissions (the handler executable). With -check it only verifies an existing zip, as the deploy scripts do
// before uploading one.
//
//	go run ./cmd/hfpackage                          # bin/package + bin/holdfast.zip
//	go run ./cmd/hfpackage -check bin/holdfast.zip  # exit 1 and say why when the zip would not run
//
// A module of your own that calls holdfast.Main packages its handler the same way, from its root:
//
//	go run github.com/holdfast-dev/holdfast/cmd/hfpackage -main . -zip bin/app.zip
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/holdfast-dev/holdfast/internal/funcpkg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hfpackage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o funcpkg.Options
	fs.StringVar(&o.Root, "root", ".", "repository root (host.json, functions/, the handler package)")
	fs.StringVar(&o.MainPackage, "main", "./handler", "the handler's main package, relative to -root (\".\" for a module whose main is at its root)")
	fs.StringVar(&o.Stage, "stage", "bin/package", "folder the package is staged in (emptied first)")
	fs.StringVar(&o.Zip, "zip", "bin/holdfast.zip", "zip to write")
	check := fs.String("check", "", "only check this zip and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *check != "" {
		if err := funcpkg.Check(*check); err != nil {
			fmt.Fprintln(stderr, "hfpackage:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK (host.json at the root, executable linux/amd64 handler)\n", *check)
		return 0
	}
	o.Stderr = stderr
	if err := funcpkg.Build(ctx, &o); err != nil {
		fmt.Fprintln(stderr, "hfpackage:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (staged in %s)\n", o.Zip, o.Stage)
	return 0
}
