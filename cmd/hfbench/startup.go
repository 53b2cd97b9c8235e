package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"time"
)

// startup (P4) launches the handler binary runs times and measures the time from exec to its port accepting
// connections.
func startup(w io.Writer, bin string, runs int) (median, worst time.Duration, err error) {
	if _, err := os.Stat(bin); err != nil {
		return 0, 0, fmt.Errorf("handler binary: %w (build it with: go build -o %s ./handler)", err, bin)
	}
	var times []time.Duration
	for range runs {
		d, err := launchOnce(bin)
		if err != nil {
			return 0, 0, err
		}
		times = append(times, d)
	}
	slices.Sort(times)
	median, worst = times[len(times)/2], times[len(times)-1]
	fmt.Fprintf(w, "| exec → accepting connections (%d launches) | value |\n|---|---|\n", runs)
	fmt.Fprintf(w, "| median | %v |\n", median.Round(10*time.Microsecond))
	fmt.Fprintf(w, "| max | %v |\n", worst.Round(10*time.Microsecond))
	return median, worst, nil
}

func launchOnce(bin string) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+port,
		// A valid configuration; the Service Bus client is created lazily, so nothing needs to listen there.
		"ServiceBusConnection=Endpoint=sb://localhost:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
		"HOLDFAST_ENTITY=bench",
	)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for time.Since(start) < 10*time.Second {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return time.Since(start), nil
		}
		time.Sleep(200 * time.Microsecond) // polling a port: there is no event to wait on
	}
	return 0, fmt.Errorf("handler did not accept connections on %s within 10 s", addr)
}
