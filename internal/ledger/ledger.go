// Package ledger is holdfast's deferral ledger: one Table Storage row per deferred message, written before the
// message is deferred, so a deferred message's sequence number is never lost (DESIGN §2, invariants 2 and 3).
//
// A Ledger indexes one entity (a queue, or `topic/Subscriptions/sub`). Rows live in the partition EncodeKey(entity),
// keyed by RowKey(sequence number). Every conditional write matches the row's ETag; a lost race surfaces as
// ErrConflict, a missing row as ErrNotFound.
//
// Retries: the ledger never retries. Each call makes the Table requests it documents through the aztables
// client, whose pipeline applies its own retry policy (aztables.ClientOptions.Retry); a call blocks until those
// requests finish or ctx ends. All methods are safe for concurrent use.
package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

const (
	// DefaultTable is the table name used when settings name none.
	DefaultTable = "holdfastdeferrals"
	// DefaultExpiryWarning is how close to ExpiresAt a row is flagged ExpiringSoon.
	DefaultExpiryWarning = 24 * time.Hour
	// maxBatch is Table Storage's limit on operations in one entity group transaction.
	maxBatch = 100
	// maxTop is Table Storage's limit on entities in one query page.
	maxTop = 1000
	// defaultTop is the List page size when the caller passes top ≤ 0.
	defaultTop = 100
)

var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)

// Options configures a Ledger. Only Entity is required; other zero values mean the defaults.
type Options struct {
	// Entity is the entity path the ledger indexes: a queue name or `topic/Subscriptions/subscription`.
	Entity string
	// Logger receives warnings (table unavailable, rows near expiry); nil discards them.
	Logger *slog.Logger
	// ExpiryWarning flags rows whose ExpiresAt is within this window. Zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// Now is the clock; nil means time.Now. Tests inject one to age rows without sleeping.
	Now func() time.Time
	// DefaultTTL is the entity's default message time-to-live; zero means unknown. A message sent without a TTL
	// carries none in its header, and the SDK then reports ExpiresAt equal to its enqueued time; the service
	// expires it after the entity's default instead, and caps a longer message TTL at it (azservicebus
	// Message.TimeToLive). Rows record ExpiresAt from it; unknown, such a row has no ExpiresAt.
	DefaultTTL time.Duration
}

// Ledger is the deferral ledger of one entity. It is immutable after New and safe for concurrent use.
type Ledger struct {
	client        *aztables.Client
	entity        string
	pk            string
	log           *slog.Logger
	expiryWarning time.Duration
	now           func() time.Time
	defaultTTL    time.Duration

	// crash, when set (tests only), is called at each crashPoint of Defer; a non-nil result makes Defer stop
	// right there and return it, as if the process had died at that point.
	crash func(crashPoint) error
}

// New returns the ledger of opts.Entity stored in client's table. It does no I/O; call EnsureTable once at
// start-up (write paths also create a missing table on demand).
func New(client *aztables.Client, opts *Options) (*Ledger, error) {
	if client == nil {
		return nil, invalid("nil table client")
	}
	if opts == nil {
		return nil, invalid("options with an Entity are required")
	}
	pk, err := EncodeKey(opts.Entity)
	if err != nil {
		return nil, err
	}
	l := &Ledger{
		client:        client,
		entity:        opts.Entity,
		pk:            pk,
		log:           opts.Logger,
		expiryWarning: opts.ExpiryWarning,
		now:           opts.Now,
		defaultTTL:    opts.DefaultTTL,
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.expiryWarning <= 0 {
		l.expiryWarning = DefaultExpiryWarning
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// NewClientFromConnectionString returns a client for table in the account of a Table Storage connection
// string (`DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…[;TableEndpoint=…]`; note that
// `UseDevelopmentStorage=true` is not accepted by aztables). opts may be nil.
func NewClientFromConnectionString(connStr, table string, opts *aztables.ClientOptions) (*aztables.Client, error) {
	if err := validateTable(table); err != nil {
		return nil, err
	}
	svc, err := aztables.NewServiceClientFromConnectionString(connStr, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: table storage connection string: %w", ErrInvalid, err)
	}
	return svc.NewClient(table), nil
}

// NewClientWithCredential returns a client for table at a table service URI
// (`https://<account>.table.core.windows.net/`) authenticated with cred (the identity needs the Storage Table
// Data Contributor role). opts may be nil.
func NewClientWithCredential(serviceURI, table string, cred azcore.TokenCredential, opts *aztables.ClientOptions) (*aztables.Client, error) {
	if err := validateTable(table); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, invalid("nil credential for table service %q", serviceURI)
	}
	svc, err := aztables.NewServiceClient(serviceURI, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: table service URI %q: %w", ErrInvalid, serviceURI, err)
	}
	return svc.NewClient(table), nil
}

func validateTable(table string) error {
	if !tableNameRE.MatchString(table) {
		return invalid("table name %q must be a letter followed by 2–62 letters or digits", table)
	}
	return nil
}

// Entity returns the entity path the ledger indexes.
func (l *Ledger) Entity() string { return l.entity }

// EnsureTable creates the ledger's table if it does not exist. One request.
func (l *Ledger) EnsureTable(ctx context.Context) error {
	_, err := l.client.CreateTable(ctx, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == string(aztables.TableAlreadyExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: create table: %w", err)
	}
	return nil
}

// Get returns the row of sequence number seq, or ErrNotFound. One request.
func (l *Ledger) Get(ctx context.Context, seq int64) (Row, error) {
	if seq < 0 {
		return Row{}, invalid("negative sequence number %d", seq)
	}
	resp, err := l.client.GetEntity(ctx, l.pk, RowKey(seq), nil)
	if err != nil {
		err = translate(err)
		if errors.Is(err, errTableNotFound) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return Row{}, fmt.Errorf("ledger: get %d: %w", seq, err)
	}
	r, err := unmarshalRow(resp.Value, resp.ETag)
	if err != nil {
		return Row{}, err
	}
	return l.annotate(r), nil
}

// annotate fills the fields computed on read.
func (l *Ledger) annotate(r Row) Row {
	r.ExpiringSoon = !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(l.now().Add(l.expiryWarning))
	return r
}

// List returns up to top rows (≤ 0 means 100; at most 1000) in sequence-number order, starting where the
// continuation token returned by a previous call left off ("" starts at the beginning). next is "" when there
// are no more rows. A page may hold fewer than top rows even when next is not "". A token the ledger did not
// produce gives ErrInvalid. One request; a missing table lists as empty.
func (l *Ledger) List(ctx context.Context, top int, continuation string) (rows []Row, next string, err error) {
	if top <= 0 {
		top = defaultTop
	}
	top = min(top, maxTop)
	opts := &aztables.ListEntitiesOptions{
		Filter: ptr(fmt.Sprintf("PartitionKey eq '%s'", l.pk)),
		Top:    ptr(int32(top)),
	}
	if continuation != "" {
		c, err := decodeContinuation(continuation)
		if err != nil {
			return nil, "", err
		}
		opts.NextPartitionKey, opts.NextRowKey = &c.PK, &c.RK
	}
	page, err := l.client.NewListEntitiesPager(opts).NextPage(ctx)
	if err != nil {
		err = translate(err)
		if errors.Is(err, errTableNotFound) {
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("ledger: list: %w", err)
	}
	rows, err = l.decodeRows(page.Entities)
	if err != nil {
		return nil, "", err
	}
	if page.NextPartitionKey != nil && *page.NextPartitionKey != "" {
		next = encodeContinuation(continuationToken{PK: *page.NextPartitionKey, RK: deref(page.NextRowKey)})
	}
	return rows, next, nil
}

// scanFrom returns the first n rows (at most) with sequence number ≥ from, in order, and whether more may
// follow them; with sessionID set, only the rows of that session. A missing table is empty.
func (l *Ledger) scanFrom(ctx context.Context, from int64, n int, sessionID *string) (rows []Row, more bool, err error) {
	filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s'", l.pk, RowKey(from))
	if sessionID != nil {
		filter += fmt.Sprintf(" and %s eq '%s'", colSessionID, strings.ReplaceAll(*sessionID, "'", "''"))
	}
	pager := l.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: ptr(int32(min(n, maxTop)))})
	for len(rows) < n && pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			err = translate(err)
			if errors.Is(err, errTableNotFound) {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("ledger: scan from %d: %w", from, err)
		}
		got, err := l.decodeRows(page.Entities)
		if err != nil {
			return nil, false, err
		}
		rows = append(rows, got...)
	}
	if len(rows) >= n {
		return rows[:n], true, nil
	}
	return rows, false, nil
}

func (l *Ledger) decodeRows(entities [][]byte) ([]Row, error) {
	rows := make([]Row, 0, len(entities))
	for _, b := range entities {
		r, err := unmarshalRow(b, "")
		if err != nil {
			return nil, err
		}
		rows = append(rows, l.annotate(r))
	}
	return rows, nil
}

// Add inserts r (its Entity is set to the ledger's) and returns it with its ETag; ErrConflict if the row
// exists. Creates a missing table and retries once.
func (l *Ledger) Add(ctx context.Context, r Row) (Row, error) {
	r.Entity = l.entity
	b, err := marshalRow(r)
	if err != nil {
		return Row{}, err
	}
	var etag azcore.ETag
	err = l.withTable(ctx, func() error {
		resp, err := l.client.AddEntity(ctx, b, nil)
		etag = resp.ETag
		return err
	})
	if err != nil {
		return Row{}, fmt.Errorf("ledger: add %d: %w", r.SequenceNumber, err)
	}
	r.ETag = etag
	return l.annotate(r), nil
}

// Put writes r unconditionally (insert or replace every column) and returns it with its new ETag. Creates a
// missing table and retries once.
func (l *Ledger) Put(ctx context.Context, r Row) (Row, error) {
	r.Entity = l.entity
	b, err := marshalRow(r)
	if err != nil {
		return Row{}, err
	}
	var etag azcore.ETag
	err = l.withTable(ctx, func() error {
		resp, err := l.client.UpsertEntity(ctx, b, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
		etag = resp.ETag
		return err
	})
	if err != nil {
		return Row{}, fmt.Errorf("ledger: put %d: %w", r.SequenceNumber, err)
	}
	r.ETag = etag
	return l.annotate(r), nil
}

// withTable runs op; when the table is missing it creates it and runs op once more. Errors are translated.
func (l *Ledger) withTable(ctx context.Context, op func() error) error {
	err := translate(op())
	if !errors.Is(err, errTableNotFound) {
		return err
	}
	if err := l.EnsureTable(ctx); err != nil {
		return err
	}
	return translate(op())
}

// Update replaces every column of r if the stored row still has r.ETag, and returns r with its new ETag.
// ErrConflict if the row changed, ErrNotFound if it is gone, ErrInvalid without an ETag. One request.
func (l *Ledger) Update(ctx context.Context, r Row) (Row, error) {
	if r.ETag == "" {
		return Row{}, invalid("update of row %d without an ETag", r.SequenceNumber)
	}
	r.Entity = l.entity
	b, err := marshalRow(r)
	if err != nil {
		return Row{}, err
	}
	resp, err := l.client.UpdateEntity(ctx, b, &aztables.UpdateEntityOptions{IfMatch: &r.ETag, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return Row{}, fmt.Errorf("ledger: update %d: %w", r.SequenceNumber, translate(err))
	}
	r.ETag = resp.ETag
	return l.annotate(r), nil
}

// Lease claims r for a drain: state resubmitting, LeaseUntil until, conditional on r.ETag. It returns the
// leased row (with the ETag the drain must use next) or ErrConflict when another drain or a defer got there
// first. One request.
func (l *Ledger) Lease(ctx context.Context, r Row, until time.Time) (Row, error) {
	r.State = StateResubmitting
	r.LeaseUntil = until
	return l.Update(ctx, r)
}

// Release ends a drain's lease on r without resubmitting: state deferred, no lease, LastError set to
// lastError (the reason the drain gave up, "" for none), conditional on r.ETag. One request.
func (l *Ledger) Release(ctx context.Context, r Row, lastError string) (Row, error) {
	r.State = StateDeferred
	r.LeaseUntil = time.Time{}
	r.LastError = lastError
	return l.Update(ctx, r)
}

// Delete removes r, conditional on r.ETag (an empty ETag deletes unconditionally). ErrConflict if the row
// changed, ErrNotFound if it is already gone. One request.
func (l *Ledger) Delete(ctx context.Context, r Row) error {
	var opts *aztables.DeleteEntityOptions
	if r.ETag != "" {
		opts = &aztables.DeleteEntityOptions{IfMatch: &r.ETag}
	}
	if _, err := l.client.DeleteEntity(ctx, l.pk, RowKey(r.SequenceNumber), opts); err != nil {
		return fmt.Errorf("ledger: delete %d: %w", r.SequenceNumber, translate(err))
	}
	return nil
}

// DeleteBatch deletes rows (each conditional on its ETag, unconditional when empty) in entity group
// transactions of at most 100 rows. When a transaction is refused, its rows are deleted one by one so one
// stale row does not keep the others. Rows already gone count as deleted. The error joins one error per row
// that could not be deleted (errors.Is works with ErrConflict); nil means every row is gone.
func (l *Ledger) DeleteBatch(ctx context.Context, rows []Row) error {
	ops := make([]op, len(rows))
	for i, r := range rows {
		ops[i] = op{kind: aztables.TransactionTypeDelete, row: r}
	}
	var errs []error
	for i, err := range l.apply(ctx, ops) {
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("ledger: delete %d: %w", rows[i].SequenceNumber, err))
		}
	}
	return errors.Join(errs...)
}

// op is one row change applied by apply.
type op struct {
	kind aztables.TransactionType // Add, UpdateReplace (conditional on row.ETag) or Delete
	row  Row
}

// apply performs ops, in transactions of ≤ 100 per partition, and returns one translated error per op. A
// transaction the service refuses (one op failed, e.g. a stale ETag) is retried op by op; a transport failure
// fails its ops without further requests.
func (l *Ledger) apply(ctx context.Context, ops []op) []error {
	errs := make([]error, len(ops))
	// Group by partition, keeping order; a ledger normally has one partition.
	groups := map[string][]int{}
	var order []string
	for i, o := range ops {
		pk, err := EncodeKey(o.row.Entity)
		if o.row.Entity == "" {
			pk, err = l.pk, nil
		}
		if err != nil {
			errs[i] = err
			continue
		}
		if _, ok := groups[pk]; !ok {
			order = append(order, pk)
		}
		groups[pk] = append(groups[pk], i)
	}
	for _, pk := range order {
		idx := groups[pk]
		for len(idx) > 0 {
			n := min(len(idx), maxBatch)
			l.applyChunk(ctx, pk, ops, idx[:n], errs)
			idx = idx[n:]
		}
	}
	return errs
}

func (l *Ledger) applyChunk(ctx context.Context, pk string, ops []op, idx []int, errs []error) {
	actions := make([]aztables.TransactionAction, 0, len(idx))
	for _, i := range idx {
		a, err := l.action(pk, ops[i])
		if err != nil {
			errs[i] = err
			continue
		}
		actions = append(actions, a)
	}
	if len(actions) == 0 {
		return
	}
	_, err := l.client.SubmitTransaction(ctx, actions, nil)
	if err == nil {
		return
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		for _, i := range idx {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return
	}
	for _, i := range idx {
		if errs[i] == nil {
			errs[i] = l.applyOne(ctx, pk, ops[i])
		}
	}
}

// action renders o as a transaction action in partition pk.
func (l *Ledger) action(pk string, o op) (aztables.TransactionAction, error) {
	a := aztables.TransactionAction{ActionType: o.kind}
	if o.row.ETag != "" && o.kind != aztables.TransactionTypeAdd {
		a.IfMatch = ptr(o.row.ETag)
	}
	var err error
	if o.kind == aztables.TransactionTypeDelete {
		a.Entity, err = json.Marshal(map[string]string{"PartitionKey": pk, "RowKey": RowKey(o.row.SequenceNumber)})
	} else {
		if o.row.Entity == "" {
			o.row.Entity = l.entity
		}
		a.Entity, err = marshalRow(o.row)
	}
	if err == nil && o.kind == aztables.TransactionTypeUpdateReplace && a.IfMatch == nil {
		err = invalid("update of row %d without an ETag", o.row.SequenceNumber)
	}
	return a, err
}

// applyOne performs o alone.
func (l *Ledger) applyOne(ctx context.Context, pk string, o op) error {
	a, err := l.action(pk, o)
	if err != nil {
		return err
	}
	switch o.kind {
	case aztables.TransactionTypeAdd:
		_, err = l.client.AddEntity(ctx, a.Entity, nil)
	case aztables.TransactionTypeUpdateReplace:
		_, err = l.client.UpdateEntity(ctx, a.Entity, &aztables.UpdateEntityOptions{IfMatch: a.IfMatch, UpdateMode: aztables.UpdateModeReplace})
	case aztables.TransactionTypeDelete:
		_, err = l.client.DeleteEntity(ctx, pk, RowKey(o.row.SequenceNumber), &aztables.DeleteEntityOptions{IfMatch: a.IfMatch})
	default:
		err = invalid("unsupported row operation %q", o.kind)
	}
	return translate(err)
}

// continuationToken is the opaque List continuation: Table Storage's next partition and row keys.
type continuationToken struct {
	V  int    `json:"v"`
	PK string `json:"pk"`
	RK string `json:"rk"`
}

func encodeContinuation(c continuationToken) string {
	c.V = 1
	b, _ := json.Marshal(c) // a struct of strings always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinuation(s string) (continuationToken, error) {
	var c continuationToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.V != 1 || c.PK == "" {
		return continuationToken{}, invalid("continuation token %.40q is not one this ledger issued", s)
	}
	return c, nil
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
