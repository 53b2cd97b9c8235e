package amqp

import "math"

// arrayElemCode is the index of the element constructor of the (already validated) array at pos.
func arrayElemCode(b []byte, pos int) int {
	if b[pos] == codeArray8 {
		return pos + 3
	}
	return pos + 9
}

// known decodes the list body of a known described type; pos is at the list's format code.
func (d *decoder) known(code uint64, pos, end, depth int) (any, int, error) {
	if pos >= end {
		return nil, pos, d.errf(pos, "%s: truncated: want list, got end of input", descriptorName(code))
	}
	lc := d.b[pos]
	if lc != codeList0 && lc != codeList8 && lc != codeList32 {
		return nil, pos, d.errf(pos, "%s: want list, got %s", descriptorName(code), typeName(lc))
	}
	return d.knownBody(code, lc, pos+1, end, depth)
}

// knownBody decodes a known described type whose list format code lc has been read; pos is after it.
func (d *decoder) knownBody(code uint64, lc byte, pos, end, depth int) (any, int, error) {
	if depth > MaxDepth {
		return nil, pos, d.errf(pos, "values nested deeper than %d", MaxDepth)
	}
	f := fieldList{d: d, obj: descriptorName(code), depth: depth + 1}
	if lc == codeList0 {
		f.pos, f.end = pos, pos
	} else {
		count, body, bodyEnd, err := d.compoundHeader(lc, pos, end)
		if err != nil {
			return nil, pos, err
		}
		if count > bodyEnd-body {
			return nil, pos, d.errf(pos, "%s: field count %d exceeds the %d bytes of its list", f.obj, count, bodyEnd-body)
		}
		f.count, f.pos, f.end = count, body, bodyEnd
	}
	v, err := f.decode(code)
	if err != nil {
		return nil, f.pos, err
	}
	if err := f.finish(); err != nil {
		return nil, f.pos, err
	}
	return v, f.end, nil
}

func (f *fieldList) decode(code uint64) (any, error) {
	switch code {
	case DescOpen:
		return f.open()
	case DescBegin:
		return f.begin()
	case DescAttach:
		return f.attach()
	case DescFlow:
		return f.flow()
	case DescTransfer:
		return f.transfer()
	case DescDisposition:
		return f.disposition()
	case DescDetach:
		return f.detach()
	case DescEnd:
		e, err := f.errorField("error")
		return &End{Error: e}, err
	case DescClose:
		e, err := f.errorField("error")
		return &Close{Error: e}, err
	case DescError:
		return f.amqpError()
	case DescReceived:
		return f.received()
	case DescAccepted:
		return &Accepted{}, nil
	case DescRejected:
		e, err := f.errorField("error")
		return &Rejected{Error: e}, err
	case DescReleased:
		return &Released{}, nil
	case DescModified:
		return f.modified()
	case DescSource:
		return f.source()
	case DescTarget:
		return f.target()
	case DescSASLMechanisms:
		return f.saslMechanisms()
	case DescSASLInit:
		return f.saslInit()
	case DescSASLChallenge:
		b, err := f.reqBinary("challenge")
		return &SASLChallenge{Challenge: b}, err
	case DescSASLResponse:
		b, err := f.reqBinary("response")
		return &SASLResponse{Response: b}, err
	case DescSASLOutcome:
		return f.saslOutcome()
	}
	return nil, f.d.errf(f.pos, "descriptor 0x%x has no decoder", code)
}

func (f *fieldList) reqBinary(name string) ([]byte, error) {
	b, ok, err := f.binary(name)
	if err == nil && !ok {
		err = f.missing(name)
	}
	return b, err
}

func (f *fieldList) open() (*Open, error) {
	o := &Open{MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}
	var ok bool
	var err error
	if o.ContainerID, ok, err = f.str("container-id"); err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("container-id")
	}
	if o.Hostname, _, err = f.str("hostname"); err != nil {
		return nil, err
	}
	mfs, ok, err := f.uint32("max-frame-size")
	if err != nil {
		return nil, err
	}
	if ok {
		if mfs < 512 {
			return nil, f.d.errf(f.pos, "open.max-frame-size: %d is below the minimum of 512", mfs)
		}
		o.MaxFrameSize = mfs
	}
	cm, ok, err := f.unsigned("channel-max", "ushort", math.MaxUint16)
	if err != nil {
		return nil, err
	}
	if ok {
		o.ChannelMax = uint16(cm)
	}
	if o.IdleTimeout, _, err = f.uint32("idle-time-out"); err != nil {
		return nil, err
	}
	if o.OutgoingLocales, _, err = f.symbols("outgoing-locales"); err != nil {
		return nil, err
	}
	if o.IncomingLocales, _, err = f.symbols("incoming-locales"); err != nil {
		return nil, err
	}
	if o.OfferedCapabilities, _, err = f.symbols("offered-capabilities"); err != nil {
		return nil, err
	}
	if o.DesiredCapabilities, _, err = f.symbols("desired-capabilities"); err != nil {
		return nil, err
	}
	if o.Properties, err = f.fields("properties"); err != nil {
		return nil, err
	}
	return o, nil
}

func (f *fieldList) begin() (*Begin, error) {
	type box struct {
		b  Begin
		rc uint16
	}
	x := &box{b: Begin{HandleMax: math.MaxUint32}}
	b := &x.b
	rc, ok, err := f.unsigned("remote-channel", "ushort", math.MaxUint16)
	if err != nil {
		return nil, err
	}
	if ok {
		x.rc = uint16(rc)
		b.RemoteChannel = &x.rc
	}
	if b.NextOutgoingID, err = f.reqUint32("next-outgoing-id"); err != nil {
		return nil, err
	}
	if b.IncomingWindow, err = f.reqUint32("incoming-window"); err != nil {
		return nil, err
	}
	if b.OutgoingWindow, err = f.reqUint32("outgoing-window"); err != nil {
		return nil, err
	}
	hm, ok, err := f.uint32("handle-max")
	if err != nil {
		return nil, err
	}
	if ok {
		b.HandleMax = hm
	}
	if b.OfferedCapabilities, _, err = f.symbols("offered-capabilities"); err != nil {
		return nil, err
	}
	if b.DesiredCapabilities, _, err = f.symbols("desired-capabilities"); err != nil {
		return nil, err
	}
	if b.Properties, err = f.fields("properties"); err != nil {
		return nil, err
	}
	return b, nil
}

func (f *fieldList) attach() (*Attach, error) {
	type box struct {
		a        Attach
		snd, rcv uint8
		idc      uint32
		mms      uint64
	}
	x := &box{}
	a := &x.a
	var ok bool
	var err error
	if a.Name, ok, err = f.str("name"); err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("name")
	}
	if a.Handle, err = f.reqUint32("handle"); err != nil {
		return nil, err
	}
	role, ok, err := f.boolean("role")
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("role")
	}
	a.Role = Role(role)
	if a.SndSettleMode, err = f.ubyte("snd-settle-mode", &x.snd); err != nil {
		return nil, err
	}
	if a.RcvSettleMode, err = f.ubyte("rcv-settle-mode", &x.rcv); err != nil {
		return nil, err
	}
	start := f.pos
	v, err := f.composite("source", "source")
	if err != nil {
		return nil, err
	}
	if v != nil {
		if a.Source, ok = v.(*Source); !ok {
			return nil, f.d.errf(start, "attach.source: want source, got %s", goTypeName(v))
		}
	}
	start = f.pos
	if v, err = f.composite("target", "target"); err != nil {
		return nil, err
	}
	if v != nil {
		if a.Target, ok = v.(*Target); !ok {
			return nil, f.d.errf(start, "attach.target: want target, got %s", goTypeName(v))
		}
	}
	if a.Unsettled, err = f.anyMap("unsettled"); err != nil {
		return nil, err
	}
	if a.IncompleteUnsettled, err = f.flag("incomplete-unsettled"); err != nil {
		return nil, err
	}
	if a.InitialDeliveryCount, err = f.optUint32("initial-delivery-count", &x.idc); err != nil {
		return nil, err
	}
	mms, ok, err := f.unsigned("max-message-size", "ulong", math.MaxUint64)
	if err != nil {
		return nil, err
	}
	if ok {
		x.mms = mms
		a.MaxMessageSize = &x.mms
	}
	if a.OfferedCapabilities, _, err = f.symbols("offered-capabilities"); err != nil {
		return nil, err
	}
	if a.DesiredCapabilities, _, err = f.symbols("desired-capabilities"); err != nil {
		return nil, err
	}
	if a.Properties, err = f.fields("properties"); err != nil {
		return nil, err
	}
	return a, nil
}

// expiryPolicy reads a terminus-expiry-policy; absent, null or empty ⇒ "session-end".
func (f *fieldList) expiryPolicy() (Symbol, error) {
	s, _, err := f.sym("expiry-policy")
	if s == "" {
		s = "session-end"
	}
	return s, err
}

// address reads a terminus address (a string; a symbol is accepted too).
func (f *fieldList) address() (*string, error) {
	s, ok, err := f.str("address")
	if !ok || err != nil {
		return nil, err
	}
	return &s, nil
}

func (f *fieldList) source() (*Source, error) {
	s := &Source{}
	var err error
	if s.Address, err = f.address(); err != nil {
		return nil, err
	}
	if s.Durable, _, err = f.uint32("durable"); err != nil {
		return nil, err
	}
	if s.ExpiryPolicy, err = f.expiryPolicy(); err != nil {
		return nil, err
	}
	if s.Timeout, _, err = f.uint32("timeout"); err != nil {
		return nil, err
	}
	if s.Dynamic, err = f.flag("dynamic"); err != nil {
		return nil, err
	}
	if s.DynamicNodeProperties, err = f.fields("dynamic-node-properties"); err != nil {
		return nil, err
	}
	if s.DistributionMode, _, err = f.sym("distribution-mode"); err != nil {
		return nil, err
	}
	if s.Filter, err = f.symbolMap("filter"); err != nil {
		return nil, err
	}
	if s.DefaultOutcome, err = f.anyValue("default-outcome"); err != nil {
		return nil, err
	}
	if s.Outcomes, _, err = f.symbols("outcomes"); err != nil {
		return nil, err
	}
	if s.Capabilities, _, err = f.symbols("capabilities"); err != nil {
		return nil, err
	}
	return s, nil
}

func (f *fieldList) target() (*Target, error) {
	t := &Target{}
	var err error
	if t.Address, err = f.address(); err != nil {
		return nil, err
	}
	if t.Durable, _, err = f.uint32("durable"); err != nil {
		return nil, err
	}
	if t.ExpiryPolicy, err = f.expiryPolicy(); err != nil {
		return nil, err
	}
	if t.Timeout, _, err = f.uint32("timeout"); err != nil {
		return nil, err
	}
	if t.Dynamic, err = f.flag("dynamic"); err != nil {
		return nil, err
	}
	if t.DynamicNodeProperties, err = f.fields("dynamic-node-properties"); err != nil {
		return nil, err
	}
	if t.Capabilities, _, err = f.symbols("capabilities"); err != nil {
		return nil, err
	}
	return t, nil
}

func (f *fieldList) flow() (*Flow, error) {
	type box struct {
		f                                    Flow
		nextIn, handle, count, credit, avail uint32
	}
	x := &box{}
	fl := &x.f
	var err error
	if fl.NextIncomingID, err = f.optUint32("next-incoming-id", &x.nextIn); err != nil {
		return nil, err
	}
	if fl.IncomingWindow, err = f.reqUint32("incoming-window"); err != nil {
		return nil, err
	}
	if fl.NextOutgoingID, err = f.reqUint32("next-outgoing-id"); err != nil {
		return nil, err
	}
	if fl.OutgoingWindow, err = f.reqUint32("outgoing-window"); err != nil {
		return nil, err
	}
	if fl.Handle, err = f.optUint32("handle", &x.handle); err != nil {
		return nil, err
	}
	if fl.DeliveryCount, err = f.optUint32("delivery-count", &x.count); err != nil {
		return nil, err
	}
	if fl.LinkCredit, err = f.optUint32("link-credit", &x.credit); err != nil {
		return nil, err
	}
	if fl.Available, err = f.optUint32("available", &x.avail); err != nil {
		return nil, err
	}
	if fl.Drain, err = f.flag("drain"); err != nil {
		return nil, err
	}
	if fl.Echo, err = f.flag("echo"); err != nil {
		return nil, err
	}
	if fl.Properties, err = f.fields("properties"); err != nil {
		return nil, err
	}
	return fl, nil
}

func (f *fieldList) transfer() (*Transfer, error) {
	type box struct {
		t          Transfer
		id, format uint32
		settled    bool
		rcv        uint8
	}
	x := &box{}
	t := &x.t
	var err error
	if t.Handle, err = f.reqUint32("handle"); err != nil {
		return nil, err
	}
	if t.DeliveryID, err = f.optUint32("delivery-id", &x.id); err != nil {
		return nil, err
	}
	if t.DeliveryTag, _, err = f.binary("delivery-tag"); err != nil {
		return nil, err
	}
	if t.MessageFormat, err = f.optUint32("message-format", &x.format); err != nil {
		return nil, err
	}
	settled, ok, err := f.boolean("settled")
	if err != nil {
		return nil, err
	}
	if ok {
		x.settled = settled
		t.Settled = &x.settled
	}
	if t.More, err = f.flag("more"); err != nil {
		return nil, err
	}
	if t.RcvSettleMode, err = f.ubyte("rcv-settle-mode", &x.rcv); err != nil {
		return nil, err
	}
	if t.State, err = f.stateField("state"); err != nil {
		return nil, err
	}
	if t.Resume, err = f.flag("resume"); err != nil {
		return nil, err
	}
	if t.Aborted, err = f.flag("aborted"); err != nil {
		return nil, err
	}
	if t.Batchable, err = f.flag("batchable"); err != nil {
		return nil, err
	}
	return t, nil
}

func (f *fieldList) disposition() (*Disposition, error) {
	type box struct {
		d    Disposition
		last uint32
	}
	x := &box{}
	d := &x.d
	role, ok, err := f.boolean("role")
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("role")
	}
	d.Role = Role(role)
	if d.First, err = f.reqUint32("first"); err != nil {
		return nil, err
	}
	if d.Last, err = f.optUint32("last", &x.last); err != nil {
		return nil, err
	}
	if d.Settled, err = f.flag("settled"); err != nil {
		return nil, err
	}
	if d.State, err = f.stateField("state"); err != nil {
		return nil, err
	}
	if d.Batchable, err = f.flag("batchable"); err != nil {
		return nil, err
	}
	return d, nil
}

func (f *fieldList) detach() (*Detach, error) {
	d := &Detach{}
	var err error
	if d.Handle, err = f.reqUint32("handle"); err != nil {
		return nil, err
	}
	if d.Closed, err = f.flag("closed"); err != nil {
		return nil, err
	}
	if d.Error, err = f.errorField("error"); err != nil {
		return nil, err
	}
	return d, nil
}

func (f *fieldList) amqpError() (*Error, error) {
	e := &Error{}
	var ok bool
	var err error
	if e.Condition, ok, err = f.sym("condition"); err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("condition")
	}
	if e.Description, _, err = f.str("description"); err != nil {
		return nil, err
	}
	if e.Info, err = f.fields("info"); err != nil {
		return nil, err
	}
	return e, nil
}

func (f *fieldList) received() (*Received, error) {
	r := &Received{}
	var err error
	if r.SectionNumber, err = f.reqUint32("section-number"); err != nil {
		return nil, err
	}
	off, ok, err := f.unsigned("section-offset", "ulong", math.MaxUint64)
	if err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("section-offset")
	}
	r.SectionOffset = off
	return r, nil
}

func (f *fieldList) modified() (*Modified, error) {
	m := &Modified{}
	var err error
	if m.DeliveryFailed, err = f.flag("delivery-failed"); err != nil {
		return nil, err
	}
	if m.UndeliverableHere, err = f.flag("undeliverable-here"); err != nil {
		return nil, err
	}
	if m.MessageAnnotations, err = f.anyMap("message-annotations"); err != nil {
		return nil, err
	}
	return m, nil
}

func (f *fieldList) saslMechanisms() (*SASLMechanisms, error) {
	syms, ok, err := f.symbols("sasl-server-mechanisms")
	if err == nil && !ok {
		err = f.missing("sasl-server-mechanisms")
	}
	if err != nil {
		return nil, err
	}
	return &SASLMechanisms{Mechanisms: syms}, nil
}

func (f *fieldList) saslInit() (*SASLInit, error) {
	s := &SASLInit{}
	var ok bool
	var err error
	if s.Mechanism, ok, err = f.sym("mechanism"); err != nil {
		return nil, err
	} else if !ok {
		return nil, f.missing("mechanism")
	}
	if s.InitialResponse, _, err = f.binary("initial-response"); err != nil {
		return nil, err
	}
	if s.Hostname, _, err = f.str("hostname"); err != nil {
		return nil, err
	}
	return s, nil
}

func (f *fieldList) saslOutcome() (*SASLOutcome, error) {
	s := &SASLOutcome{}
	code, ok, err := f.unsigned("code", "ubyte", math.MaxUint8)
	if err == nil && !ok {
		err = f.missing("code")
	}
	if err != nil {
		return nil, err
	}
	s.Code = uint8(code)
	if s.AdditionalData, _, err = f.binary("additional-data"); err != nil {
		return nil, err
	}
	return s, nil
}
