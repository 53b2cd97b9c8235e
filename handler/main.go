// Command handler is the holdfast custom handler with a built-in processor: HOLDFAST_PROCESSOR chooses
// "demo" or "webhook". Everything else — settings, wiring, serving, the standalone modes (`handler run-once`,
// `handler worker`, `handler serve`) and exit codes — is holdfast.Main; a program with its own processor calls
// holdfast.Main the same way (see examples/custom-processor).
package main

import "github.com/holdfast-dev/holdfast"

func main() {
	holdfast.Main(nil) // nil: the built-in processor named by HOLDFAST_PROCESSOR
}
