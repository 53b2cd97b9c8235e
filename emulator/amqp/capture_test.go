package amqp

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

// -update-capture rewrites testdata/sdk-capture.txt and the fuzz corpus from a live go-amqp session.
var updateCapture = flag.Bool("update-capture", false, "rewrite testdata/sdk-capture.txt and testdata/fuzz from a live go-amqp client")

const captureFile = "testdata/sdk-capture.txt"

// recorder copies everything read through it.
type recorder struct {
	r   io.Reader
	mu  sync.Mutex // guards buf: written by the broker goroutine, read by the test after it is joined
	buf []byte
}

func (rc *recorder) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.mu.Lock()
	rc.buf = append(rc.buf, p[:n]...)
	rc.mu.Unlock()
	return n, err
}

func (rc *recorder) bytes() []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]byte(nil), rc.buf...)
}

// scriptBroker is a minimal AMQP peer built on this codec: enough of a broker for go-amqp to
// authenticate, open sessions and links, send one message and receive one. It serves one connection.
type scriptBroker struct {
	ln      net.Listener
	deliver []byte // transfer payload sent on the first credit of each receiving link
	rec     *recorder
	done    chan struct{} // closed when serve returns
	err     error         // written by serve before done is closed
	got     []Frame       // frames received, in order; owned by serve until done
}

func startScriptBroker(t *testing.T, deliver []byte) *scriptBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptBroker{ln: ln, deliver: deliver, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.err = b.serve()
	}()
	t.Cleanup(func() {
		ln.Close()
		<-b.done
	})
	return b
}

func (b *scriptBroker) serve() error {
	conn, err := b.ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	b.rec = &recorder{r: conn}
	fr := NewFrameReader(b.rec)
	w := bufio.NewWriter(conn)
	send := func(fs ...Frame) error {
		for _, f := range fs {
			buf, err := AppendFrame(nil, f)
			if err != nil {
				return err
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	read := func() (Frame, error) {
		f, err := fr.ReadFrame()
		if err == nil {
			b.got = append(b.got, f)
		}
		return f, err
	}
	if hdr, err := fr.ReadProtocolHeader(); err != nil || hdr != HeaderSASL {
		return fmt.Errorf("sasl header %q: %v", hdr, err)
	}
	if _, err := w.Write(HeaderSASL[:]); err != nil {
		return err
	}
	if err := send(Frame{Type: FrameSASL, Body: &SASLMechanisms{Mechanisms: []Symbol{"MSSBCBS", "ANONYMOUS"}}}); err != nil {
		return err
	}
	if f, err := read(); err != nil {
		return err
	} else if _, ok := f.Body.(*SASLInit); !ok {
		return fmt.Errorf("want sasl-init, got %#v", f.Body)
	}
	if err := send(Frame{Type: FrameSASL, Body: &SASLOutcome{Code: 0}}); err != nil {
		return err
	}
	if hdr, err := fr.ReadProtocolHeader(); err != nil || hdr != HeaderAMQP {
		return fmt.Errorf("amqp header %q: %v", hdr, err)
	}
	if _, err := w.Write(HeaderAMQP[:]); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for {
		f, err := read()
		if err != nil {
			return err
		}
		replies, last := b.reply(f)
		if err := send(replies...); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// reply returns the frames answering f and whether the connection is closing.
func (b *scriptBroker) reply(f Frame) ([]Frame, bool) {
	ch := f.Channel
	switch p := f.Body.(type) {
	case *Open:
		return []Frame{{Body: &Open{ContainerID: "script-broker", MaxFrameSize: 65536, ChannelMax: 65535}}}, false
	case *Begin:
		return []Frame{{Channel: ch, Body: &Begin{RemoteChannel: &ch, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 255}}}, false
	case *Attach:
		r := &Attach{Name: p.Name, Handle: p.Handle, Role: !p.Role, SndSettleMode: p.SndSettleMode,
			RcvSettleMode: p.RcvSettleMode, Source: p.Source, Target: p.Target, MaxMessageSize: ptr[uint64](262144)}
		if p.Role == RoleReceiver {
			r.InitialDeliveryCount = ptr[uint32](0)
			return []Frame{{Channel: ch, Body: r}}, false
		}
		credit := &Flow{NextIncomingID: ptr[uint32](0), IncomingWindow: 5000, OutgoingWindow: 5000,
			Handle: &p.Handle, DeliveryCount: ptr[uint32](0), LinkCredit: ptr[uint32](10)}
		return []Frame{{Channel: ch, Body: r}, {Channel: ch, Body: credit}}, false
	case *Flow:
		if p.Handle == nil || p.LinkCredit == nil || *p.LinkCredit == 0 {
			return nil, false
		}
		tag := []byte("0123456789abcdef")
		return []Frame{{Channel: ch, Body: &Transfer{Handle: *p.Handle, DeliveryID: ptr[uint32](0), DeliveryTag: tag,
			MessageFormat: ptr[uint32](0), Settled: ptr(false)}, Payload: b.deliver}}, false
	case *Transfer:
		if p.Settled != nil && *p.Settled || p.DeliveryID == nil {
			return nil, false
		}
		return []Frame{{Channel: ch, Body: &Disposition{Role: RoleReceiver, First: *p.DeliveryID, Settled: true, State: &Accepted{}}}}, false
	case *Disposition:
		if p.Settled {
			return nil, false
		}
		return []Frame{{Channel: ch, Body: &Disposition{Role: RoleSender, First: p.First, Last: p.Last, Settled: true, State: p.State}}}, false
	case *Detach:
		return []Frame{{Channel: ch, Body: &Detach{Handle: p.Handle, Closed: true}}}, false
	case *End:
		return []Frame{{Channel: ch, Body: &End{}}}, false
	case *Close:
		return []Frame{{Body: &Close{}}}, true
	}
	return nil, false
}

// runGoAMQPClient drives a go-amqp client against addr the way azservicebus does: ANONYMOUS SASL,
// the SDK's open properties, a mixed-mode sender, a PeekLock (settle-mode second) receiver with manual
// credit, and a session receiver link with the Service Bus session filter.
func runGoAMQPClient(ctx context.Context, addr string, send *goamqp.Message) (*goamqp.Message, error) {
	conn, err := goamqp.Dial(ctx, "amqp://"+addr, &goamqp.ConnOptions{
		SASLType:    goamqp.SASLTypeAnonymous(),
		HostName:    "localhost:5672",
		MaxSessions: 65535,
		Properties: map[string]any{
			"product": "MSGolangClient", "version": "v1.11.0", "platform": runtime.GOOS,
			"framework": runtime.Version(), "user-agent": "azsdk-go-azservicebus/v1.11.0",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	snd, err := sess.NewSender(ctx, "myqueue", &goamqp.SenderOptions{
		SettlementMode:              ptr(goamqp.SenderSettleModeMixed),
		RequestedReceiverSettleMode: ptr(goamqp.ReceiverSettleModeFirst),
	})
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if err := snd.Send(ctx, send, nil); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	rsess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	rcv, err := rsess.NewReceiver(ctx, "myqueue", &goamqp.ReceiverOptions{
		Credit: -1, SettlementMode: ptr(goamqp.ReceiverSettleModeSecond),
	})
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	if err := rcv.IssueCredit(1); err != nil {
		return nil, fmt.Errorf("credit: %w", err)
	}
	msg, err := rcv.Receive(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if err := rcv.AcceptMessage(ctx, msg); err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	srcv, err := rsess.NewReceiver(ctx, "sessq", &goamqp.ReceiverOptions{
		Credit: -1, SettlementMode: ptr(goamqp.ReceiverSettleModeSecond),
		Filters:    []goamqp.LinkFilter{goamqp.NewLinkFilter("com.microsoft:session-filter", 0x137000000C, nil)},
		Properties: map[string]any{"com.microsoft:timeout": uint32(59888)},
	})
	if err != nil {
		return nil, fmt.Errorf("session receiver: %w", err)
	}
	for _, c := range []interface{ Close(context.Context) error }{srcv, rcv, snd, rsess, sess} {
		if err := c.Close(ctx); err != nil {
			return nil, fmt.Errorf("close: %w", err)
		}
	}
	return msg, conn.Close()
}

// splitStream cuts a client byte stream into protocol headers and frames.
func splitStream(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n := 8
		if !strings.HasPrefix(string(b), "AMQP") {
			if len(b) < 4 {
				return nil, errors.New("truncated frame size")
			}
			n = int(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
		}
		if n < 4 || n > len(b) {
			return nil, fmt.Errorf("bad unit size %d with %d bytes left", n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

// unitName names a header or frame for the capture file.
func unitName(u []byte) string {
	switch {
	case string(u) == string(HeaderSASL[:]):
		return "header-sasl"
	case string(u) == string(HeaderAMQP[:]):
		return "header-amqp"
	}
	f, err := ParseFrame(u)
	if err != nil {
		return "undecodable"
	}
	if f.Body == nil {
		return "empty"
	}
	return strings.TrimPrefix(strings.ToLower(fmt.Sprintf("%T", f.Body)), "*amqp.")
}

func sampleMessage() *goamqp.Message {
	return &goamqp.Message{
		Data:                  [][]byte{[]byte(`{"workSeconds":1,"outcome":"complete"}`)},
		Properties:            &goamqp.MessageProperties{MessageID: "m-1", ContentType: ptr("application/json")},
		ApplicationProperties: map[string]any{"k": "v", "n": int64(7)},
		Annotations:           goamqp.Annotations{"x-opt-partition-key": "p"},
	}
}

func TestGoAMQPClientAgainstCodec(t *testing.T) {
	deliver, err := sampleMessage().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, baseline) })
	b := startScriptBroker(t, deliver)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := runGoAMQPClient(ctx, b.ln.Addr().String(), sampleMessage())
	if err != nil {
		t.Fatalf("go-amqp client: %v", err)
	}
	<-b.done
	if b.err != nil {
		t.Fatalf("broker: %v", b.err)
	}
	// The client decoded our transfer.
	if got.Properties == nil || got.Properties.MessageID != "m-1" || string(got.GetData()) != string(sampleMessage().Data[0]) {
		t.Fatalf("client received %#v", got)
	}
	checkClientFrames(t, b.got)

	units, err := splitStream(b.rec.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if *updateCapture {
		writeCapture(t, units)
	}
}

// checkClientFrames asserts what go-amqp put on the wire, as decoded by this codec.
func checkClientFrames(t *testing.T, got []Frame) {
	t.Helper()
	var open *Open
	var begins []*Begin
	var attaches []*Attach
	var sentPayload []byte
	var sawInit, sawAccept bool
	for _, f := range got {
		switch p := f.Body.(type) {
		case *SASLInit:
			sawInit = p.Mechanism == "ANONYMOUS" && string(p.InitialResponse) == "anonymous"
		case *Open:
			open = p
		case *Begin:
			begins = append(begins, p)
		case *Attach:
			attaches = append(attaches, p)
		case *Transfer:
			sentPayload = f.Payload
		case *Disposition:
			_, sawAccept = p.State.(*Accepted)
		}
	}
	if !sawInit {
		t.Error("no sasl-init ANONYMOUS with initial response \"anonymous\"")
	}
	if open == nil || open.Hostname != "localhost:5672" || open.ChannelMax != 65535 || open.MaxFrameSize != 65536 ||
		open.IdleTimeout != 30000 || open.Properties["product"] != "MSGolangClient" || len(open.ContainerID) == 0 {
		t.Errorf("open = %#v", open)
	}
	if len(begins) != 2 || begins[0].IncomingWindow != 5000 || begins[0].HandleMax != 4294967294 || begins[0].RemoteChannel != nil {
		t.Errorf("begins = %#v", begins)
	}
	if len(attaches) != 3 {
		t.Fatalf("got %d attaches, want 3", len(attaches))
	}
	snd, rcv, srcv := attaches[0], attaches[1], attaches[2]
	if snd.Role != RoleSender || snd.SndSettleMode == nil || *snd.SndSettleMode != SndMixed ||
		snd.Target == nil || snd.Target.Address == nil || *snd.Target.Address != "myqueue" ||
		snd.InitialDeliveryCount == nil {
		t.Errorf("sender attach = %#v", snd)
	}
	if rcv.Role != RoleReceiver || rcv.SndSettleMode != nil || rcv.RcvSettleMode == nil || *rcv.RcvSettleMode != RcvSecond ||
		rcv.Source == nil || *rcv.Source.Address != "myqueue" {
		t.Errorf("receiver attach = %#v", rcv)
	}
	filter, ok := srcv.Source.Filter["com.microsoft:session-filter"].(Described)
	if !ok || filter.Descriptor != uint64(0x137000000C) || filter.Value != nil ||
		srcv.Properties["com.microsoft:timeout"] != uint32(59888) {
		t.Errorf("session receiver attach = %#v / %#v", srcv, srcv.Source)
	}
	var m goamqp.Message
	if err := m.UnmarshalBinary(sentPayload); err != nil || m.Properties.MessageID != "m-1" {
		t.Errorf("sent payload does not unmarshal in go-amqp: %v", err)
	}
	if !sawAccept {
		t.Error("no accepted disposition from the client")
	}
}

// writeCapture stores each unit as "name hex" and refreshes the fuzz corpus.
func writeCapture(t *testing.T, units [][]byte) {
	var sb strings.Builder
	seen := map[string]int{}
	for _, u := range units {
		name := unitName(u)
		seen[name]++
		fmt.Fprintf(&sb, "%s-%d %s\n", name, seen[name], hex.EncodeToString(u))
	}
	if err := os.WriteFile(captureFile, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	vectors, err := loadCapture()
	if err != nil {
		t.Fatal(err)
	}
	writeCorpus(t, vectors)
}

type vector struct {
	name string
	b    []byte
}

// loadCapture reads testdata/sdk-capture.txt.
func loadCapture() ([]vector, error) {
	data, err := os.ReadFile(captureFile)
	if err != nil {
		return nil, err
	}
	var out []vector
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, hx, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"name hex\"", captureFile, i+1)
		}
		b, err := hex.DecodeString(hx)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", captureFile, i+1, err)
		}
		out = append(out, vector{name, b})
	}
	return out, nil
}

func writeCorpus(t *testing.T, vectors []vector) {
	write := func(target, name string, args ...string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(args, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, "sdk-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stream []byte
	for _, v := range vectors {
		stream = append(stream, v.b...)
		if strings.HasPrefix(v.name, "header") {
			continue
		}
		write("FuzzParseFrame", v.name, fmt.Sprintf("[]byte(%q)", v.b))
		if len(v.b) > 8 {
			write("FuzzDecodeValue", v.name, fmt.Sprintf("[]byte(%q)", v.b[8:]))
		}
	}
	write("FuzzFrameReader", "stream", fmt.Sprintf("[]byte(%q)", stream), "uint16(100)")
}

// TestCapturedFrames decodes the stored go-amqp frames and checks they re-encode to equal values.
func TestCapturedFrames(t *testing.T) {
	vectors, err := loadCapture()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"header-sasl-1", "saslinit-1", "header-amqp-1", "open-1", "begin-1", "attach-1",
		"transfer-1", "begin-2", "attach-2", "flow-1", "disposition-1", "attach-3", "detach-1", "close-1"}
	have := map[string]bool{}
	for _, v := range vectors {
		have[v.name] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("capture lacks %s", w)
		}
	}
	for _, v := range vectors {
		if strings.HasPrefix(v.name, "header") {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			f, err := ParseFrame(v.b)
			if err != nil {
				t.Fatalf("ParseFrame: %v", err)
			}
			if got := unitName(v.b); !strings.HasPrefix(v.name, got) {
				t.Fatalf("frame decodes as %s", got)
			}
			b, err := AppendFrame(nil, f)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			f2, err := ParseFrame(b)
			if err != nil || !valueEqual(f, f2) {
				t.Fatalf("re-encoded frame differs: %#v, %v", f2.Body, err)
			}
		})
	}
}

// waitGoroutines fails the test unless the goroutine count falls back to baseline within 5 s: the
// client's and the broker's goroutines exit asynchronously after their connections close.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestCapturedFramesTruncated feeds every proper prefix and every one-byte corruption of the captured
// frames to ParseFrame: each must fail with ErrDecode or decode to something that re-encodes.
func TestCapturedFramesTruncated(t *testing.T) {
	vectors, err := loadCapture()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vectors {
		for n := range len(v.b) {
			if _, err := ParseFrame(v.b[:n]); !errors.Is(err, ErrDecode) {
				t.Fatalf("%s[:%d]: err = %v, want ErrDecode", v.name, n, err)
			}
		}
		for i := 8; i < len(v.b); i++ {
			b := append([]byte(nil), v.b...)
			b[i] ^= 0xff
			f, err := ParseFrame(b)
			if err != nil {
				if !errors.Is(err, ErrDecode) {
					t.Fatalf("%s byte %d flipped: err = %v, want ErrDecode", v.name, i, err)
				}
				continue
			}
			if _, err := AppendFrame(nil, f); err != nil {
				t.Fatalf("%s byte %d flipped: decoded frame does not re-encode: %v", v.name, i, err)
			}
		}
	}
}
