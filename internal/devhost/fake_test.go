package devhost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the custom handler: with FAKE_HANDLER=1 in its environment TestMain
// runs fakeHandler instead of the tests. Its behaviour is steered by settings:
//
//	FAKE_EXIT_CODE   exit at once with this code after one stderr line naming FAKE_SETTING
//	FAKE_TIMER_DELAY how long each timer invocation takes (Go duration)
//	FAKE_READY_DELAY how long to wait before listening
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_HANDLER") == "1" {
		os.Exit(fakeHandler())
	}
	os.Exit(m.Run())
}

func fakeHandler() int {
	if c := os.Getenv("FAKE_EXIT_CODE"); c != "" {
		code, _ := strconv.Atoi(c)
		fmt.Fprintln(os.Stderr, "config: FAKE_SETTING is invalid: must be set")
		return code
	}
	if d, _ := time.ParseDuration(os.Getenv("FAKE_READY_DELAY")); d > 0 {
		time.Sleep(d) // simulates slow start-up of the program under test
	}
	delay, _ := time.ParseDuration(os.Getenv("FAKE_TIMER_DELAY"))
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(`{"msg":"fake handler listening"}`)
	fmt.Fprintln(os.Stderr, "warning: fake handler in use")

	var mu sync.Mutex
	var n, inflight, maxInflight int
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) })
	mux.HandleFunc("/api/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(os.Stderr, "crashing on request")
		os.Exit(7)
	})
	// Echo for every other path, as sent.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		env := map[string]string{}
		for _, k := range strings.Split(r.Header.Get("X-Fake-Env"), ",") {
			if k != "" {
				env[k] = os.Getenv(k)
			}
		}
		status := http.StatusOK
		if s := r.Header.Get("X-Fake-Status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Fake-Reply", "yes")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "path": r.URL.Path, "rawQuery": r.URL.RawQuery, "headers": r.Header,
			"body": string(body), "env": env,
		})
	})
	mux.HandleFunc("POST /{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		n++
		inflight++
		maxInflight = max(maxInflight, inflight)
		count := n
		mu.Unlock()
		select { // simulated work, cut short when the host cancels the request
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		mu.Lock()
		inflight--
		peak := maxInflight
		mu.Unlock()
		if r.PathValue("name") == "Fail" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"Outputs": map[string]any{},
			"Logs":    []string{fmt.Sprintf("run %d", count)},
			"ReturnValue": map[string]any{
				"n": count, "maxConcurrent": peak, "request": json.RawMessage(body), "headers": r.Header,
			},
		})
	})
	srv := &http.Server{Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(`{"msg":"fake handler stopped"}`)
	return 0
}
