package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// handlerProc is the running custom handler process.
type handlerProc struct {
	cmd  *exec.Cmd
	port int

	// exited is closed by the wait goroutine (owned by Host) once cmd.Wait returned; waitErr is
	// written before the close and read only after it.
	exited  chan struct{}
	waitErr error

	stdout, stderr *lineLogger
}

// freePort asks the kernel for an unused TCP port on 127.0.0.1, as the host does. The port is
// released before the handler binds it, so another process could take it first; the readiness
// wait then fails or reaches the wrong server, which is the host's behaviour too.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startHandler launches the custom handler with the host's environment variables. The process
// receives SIGTERM when ctx is done and SIGKILL if it has not exited killGrace later.
func startHandler(ctx context.Context, a *app, workerID string, log *slog.Logger, killGrace time.Duration) (*handlerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("devhost: choosing a port for the handler: %w", err)
	}
	cmd := exec.CommandContext(ctx, a.executable, a.args...)
	cmd.Dir = a.workingDir
	p := strconv.Itoa(port)
	cmd.Env = append(append([]string(nil), a.env...),
		"FUNCTIONS_CUSTOMHANDLER_PORT="+p,
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID="+workerID,
		"FUNCTIONS_HTTPWORKER_PORT="+p,
		"FUNCTIONS_HTTPWORKER_ID="+workerID,
		"FUNCTIONS_APP_ROOT_PATH="+a.root,
	)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	hp := &handlerProc{cmd: cmd, port: port, exited: make(chan struct{})}
	hp.stdout = &lineLogger{log: log, stderr: false, keep: 5}
	hp.stderr = &lineLogger{log: log, stderr: true, keep: 20}
	cmd.Stdout, cmd.Stderr = hp.stdout, hp.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("devhost: starting handler %s: %w", a.executable, err)
	}
	log.Info("handler started", "pid", cmd.Process.Pid, "path", a.executable, "port", port)
	return hp, nil
}

// wait runs cmd.Wait; it is the body of the goroutine that owns the process's exit.
func (hp *handlerProc) wait() {
	hp.waitErr = hp.cmd.Wait()
	hp.stdout.flush()
	hp.stderr.flush()
	close(hp.exited)
}

// exitError describes how the process ended, with its last stderr lines (or, when it wrote none,
// its last stdout lines).
func (hp *handlerProc) exitError() error {
	msg := "exited"
	if hp.waitErr != nil {
		msg = hp.waitErr.Error()
	} else if hp.cmd.ProcessState != nil {
		msg = hp.cmd.ProcessState.String()
	}
	if tail := hp.stderr.tail(); len(tail) > 0 {
		return fmt.Errorf("%w (%s); stderr: %s", ErrHandlerExited, msg, strings.Join(tail, " | "))
	}
	if tail := hp.stdout.tail(); len(tail) > 0 {
		return fmt.Errorf("%w (%s); last output: %s", ErrHandlerExited, msg, strings.Join(tail, " | "))
	}
	return fmt.Errorf("%w (%s)", ErrHandlerExited, msg)
}

// waitReady polls GET http://127.0.0.1:<port>/ every 25 ms until any HTTP response arrives (the
// host's readiness rule), the process exits, or timeout passes.
func (hp *handlerProc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	url := "http://127.0.0.1:" + strconv.Itoa(hp.port) + "/"
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-hp.exited:
			return hp.exitError()
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%w: no HTTP answer on 127.0.0.1:%d within %s (listen on FUNCTIONS_CUSTOMHANDLER_PORT first)", ErrNotReady, hp.port, timeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Messages of the records that carry a line of the handler's output in their "line" attribute.
const (
	msgHandlerStdout = "handler stdout"
	msgHandlerStderr = "handler stderr"
)

// lineLogger turns a child's output stream into log records, one per line: stdout at Info, stderr
// at Error (Warn when the line contains "warn"), as the host does. A line that is a JSON object is
// embedded as JSON. Safe for concurrent use; exec's copying goroutine is the only writer.
type lineLogger struct {
	log    *slog.Logger
	stderr bool
	keep   int // how many recent lines to remember for exit errors

	mu     sync.Mutex // guards buf and recent
	buf    []byte
	recent []string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(string(bytes.TrimRight(l.buf[:i], "\r")))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
}

// emit is called with l.mu held.
func (l *lineLogger) emit(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	var v any = line
	if t := strings.TrimSpace(line); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		v = json.RawMessage(t)
	}
	switch {
	case !l.stderr:
		l.log.Info(msgHandlerStdout, "line", v)
	case strings.Contains(strings.ToLower(line), "warn"):
		l.log.Warn(msgHandlerStderr, "line", v)
	default:
		l.log.Error(msgHandlerStderr, "line", v)
	}
	if l.keep > 0 {
		l.recent = append(l.recent, line)
		if len(l.recent) > l.keep {
			l.recent = l.recent[len(l.recent)-l.keep:]
		}
	}
}

func (l *lineLogger) tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recent...)
}
