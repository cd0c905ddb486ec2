package chbatch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MaxIdle is how many Sends of other statements a kept batch outlives.
const MaxIdle = 256

// MaxAge is how long a batch is sent again after it was prepared. Then the
// next Send prepares afresh and reads the table's columns again: a table
// altered since (a column's type changed) is noticed within MaxAge, as a
// conversion error, instead of having the server convert the kept block's
// old types into the new ones (see the package doc).
const MaxAge = 5 * time.Second

// Stage is the step of an INSERT that failed.
type Stage int

const (
	// StagePrepare: sending the query or reading the server's header.
	StagePrepare Stage = iota
	// StageAppend: a column did not take its data (clickhouse-go converts
	// on the client: the data's type is not the column's).
	StageAppend
	// StageSend: sending the rows or the server's answer to them.
	StageSend
)

// Error is a failed INSERT: the stage, the column for StageAppend, and the
// cause (a *clickhouse.Exception when the server refused it).
type Error struct {
	Stage  Stage
	Column int // index in the statement's columns; StageAppend only
	Rows   int // rows of the INSERT; StageSend only
	// Reused says the batch was a kept one. Its block has the column
	// types of the header it was prepared with, so a refusal by the
	// server may be about those types, not the data: see Pool.Send.
	Reused bool
	Err    error
}

func (e *Error) Error() string {
	switch e.Stage {
	case StagePrepare:
		return "chbatch: preparing insert: " + e.Err.Error()
	case StageAppend:
		return fmt.Sprintf("chbatch: column %d: %v", e.Column, e.Err)
	default:
		return fmt.Sprintf("chbatch: inserting %d rows: %v", e.Rows, e.Err)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Pool keeps one sent batch per INSERT statement (see the package doc).
type Pool struct {
	conn driver.Conn
	// prepareContext, when set, derives the context a batch is prepared
	// with from the one given to Send (per-statement settings).
	prepareContext func(context.Context) context.Context
	now            func() time.Time // time.Now; tests move it

	mu struct {
		sync.Mutex
		kept   map[string]*kept
		sends  uint64
		reuses uint64
	}
}

type kept struct {
	ctx      context.Context // the context Send was given when it was prepared
	prepared time.Time
	batch    driver.Batch
	cols     []column.Interface
	lastSend uint64
}

// NewPool returns a Pool sending on conn. prepareContext may be nil; if
// not, a batch is prepared with prepareContext(ctx) instead of the ctx given
// to Send (it must not vary between calls with one ctx: see the package
// doc's settings).
func NewPool(conn driver.Conn, prepareContext func(context.Context) context.Context) *Pool {
	p := &Pool{conn: conn, prepareContext: prepareContext, now: time.Now}
	p.mu.kept = make(map[string]*kept)
	return p
}

// Send runs statement (an INSERT naming its columns) with data, one typed
// slice per column, all of one length. Its batch is kept for the next Send
// of statement with the same ctx if the INSERT succeeded. A failure of a
// kept batch is an *Error with Reused set: a caller that would give up on
// the data when the server refuses it should first send it again on a
// fresh batch (SendOnce), since a table altered since would be refused on
// the client instead (a conversion error), not by the server.
func (p *Pool) Send(ctx context.Context, statement string, data []any) error {
	k := p.take(ctx, statement)
	reused := k != nil
	if k == nil {
		pctx := ctx
		if p.prepareContext != nil {
			pctx = p.prepareContext(ctx)
		}
		b, err := p.conn.PrepareBatch(pctx, statement)
		if err != nil {
			return &Error{Stage: StagePrepare, Err: err}
		}
		k = &kept{ctx: ctx, prepared: p.now(), batch: b, cols: b.Columns()}
	}
	if err := send(k.batch, k.cols, data); err != nil {
		// Ends the INSERT if it was never sent; nothing if it was.
		_ = k.batch.Close()
		var e *Error
		if errors.As(err, &e) {
			e.Reused = reused
		}
		return err
	}
	for _, c := range k.cols {
		c.Reset() // keeps the capacity, frees nothing: the point
	}
	p.put(statement, k)
	return nil
}

// SendOnce runs statement with data on a batch of its own, prepared with
// ctx and never kept: for INSERTs whose settings differ each time.
func SendOnce(ctx context.Context, conn driver.Conn, statement string, data []any) error {
	b, err := conn.PrepareBatch(ctx, statement)
	if err != nil {
		return &Error{Stage: StagePrepare, Err: err}
	}
	defer b.Close()
	return send(b, b.Columns(), data)
}

// SendInBlocks runs statement with data as one INSERT on a batch of its
// own, never kept, sending the rows in blocks of at most blockRows: each
// block is appended to the batch's columns, sent (Flush) and the columns
// reset, so the columns grow to one block and are reused for the next,
// where SendOnce grows them from empty to all of data's rows (through every
// size Go's append steps through: about four times the rows' bytes
// allocated, BENCHMARKS.md). The server squashes the blocks of an INSERT
// into parts of its min_insert_block_size_rows, as it does one block.
//
// On any failure the INSERT is aborted (its connection closed without the
// end of data) and no further block is sent; the blocks already sent may
// stay (ClickHouse 18.16 keeps them when the connection closes mid-INSERT),
// so callers use this for idempotent rows (ReplacingMergeTree) that a
// retry sends again whole. ctx is checked before each block: clickhouse-go
// watches it only during Send, and the writes of a Flush are bounded by the
// connection (forwarder.DialWith sets a write timeout). blockRows < 1 sends
// everything in one block, as SendOnce. Columns that are not slices of one
// length are an error that is not an *Error: the caller's bug, not the
// server's answer.
func SendInBlocks(ctx context.Context, conn driver.Conn, statement string, data []any, blockRows int) error {
	n, err := rowsIn(data)
	if err != nil {
		return fmt.Errorf("chbatch: %w", err)
	}
	return SendBlocks(ctx, conn, statement, &slicedRows{data: data, n: n, block: make([]any, len(data))}, blockRows)
}

// Blocks is the rows of one INSERT, handed out a block at a time, for
// callers that keep their rows in a form of their own (indices into a
// dictionary, say) and build each block's columns when it is sent.
type Blocks interface {
	// Len is the number of rows.
	Len() int
	// Block returns rows [lo, hi) as one typed slice of hi-lo rows per
	// column of the statement. The slices may be reused by the next call.
	Block(lo, hi int) []any
}

// SendBlocks is SendInBlocks with the rows taken from rows, block by
// block. A block whose columns are not slices of its rows is an error
// that is not an *Error, as for SendInBlocks.
func SendBlocks(ctx context.Context, conn driver.Conn, statement string, rows Blocks, blockRows int) (err error) {
	n := rows.Len()
	if blockRows < 1 || n <= blockRows {
		blockRows = n
	}
	// The first block is checked before the INSERT begins, so a caller's
	// bug there costs no connection.
	block, err := blockOf(rows, 0, blockRows)
	if err != nil {
		return err
	}
	if blockRows == n {
		return SendOnce(ctx, conn, statement, block)
	}
	b, err := conn.PrepareBatch(ctx, statement)
	if err != nil {
		return &Error{Stage: StagePrepare, Err: err}
	}
	defer func() {
		if err != nil {
			_ = b.Abort() // after a failed Send: ErrBatchAlreadySent, nothing to do
		}
	}()
	cols := b.Columns()
	for lo := 0; lo < n; lo += blockRows {
		hi := min(lo+blockRows, n)
		if lo > 0 {
			if block, err = blockOf(rows, lo, hi); err != nil {
				return err
			}
		}
		if len(cols) != len(block) {
			return columnCountError(cols, block)
		}
		if err := appendColumns(cols, block); err != nil {
			return err
		}
		if hi == n {
			break // the last block goes with Send
		}
		if err := ctx.Err(); err != nil {
			return &Error{Stage: StageSend, Rows: n, Err: err}
		}
		if err := b.Flush(); err != nil {
			return &Error{Stage: StageSend, Rows: n, Err: err}
		}
	}
	if err := b.Send(); err != nil {
		return &Error{Stage: StageSend, Rows: n, Err: err}
	}
	return nil
}

// blockOf is rows [lo, hi) of rows, checked to be slices of hi-lo rows.
func blockOf(rows Blocks, lo, hi int) ([]any, error) {
	block := rows.Block(lo, hi)
	if got, err := rowsIn(block); err != nil || got != hi-lo {
		if err == nil {
			err = fmt.Errorf("block [%d, %d) has %d rows", lo, hi, got)
		}
		return nil, fmt.Errorf("chbatch: %w", err)
	}
	return block, nil
}

// slicedRows is Blocks over columns held whole.
type slicedRows struct {
	data, block []any
	n           int
}

func (s *slicedRows) Len() int { return s.n }

func (s *slicedRows) Block(lo, hi int) []any {
	sliceInto(s.block, s.data, lo, hi)
	return s.block
}

// rowsIn is the length of data's columns, which must be slices of one
// length.
func rowsIn(data []any) (int, error) {
	n := -1
	for i, c := range data {
		v := reflect.ValueOf(c)
		if v.Kind() != reflect.Slice {
			return 0, fmt.Errorf("column %d is a %T, not a slice", i, c)
		}
		if n >= 0 && v.Len() != n {
			return 0, fmt.Errorf("column %d has %d rows, column 0 %d", i, v.Len(), n)
		}
		n = v.Len()
	}
	return max(n, 0), nil
}

// sliceInto sets out to rows [lo, hi) of data's columns (checked by
// rowsIn to be slices of at least hi rows).
func sliceInto(out, data []any, lo, hi int) {
	for i, c := range data {
		out[i] = reflect.ValueOf(c).Slice(lo, hi).Interface()
	}
}

func columnCountError(cols []column.Interface, data []any) error {
	return &Error{Stage: StageAppend, Column: min(len(cols), len(data)),
		Err: fmt.Errorf("the server's header has %d columns, the data %d", len(cols), len(data))}
}

// appendColumns appends one slice per column.
func appendColumns(cols []column.Interface, data []any) error {
	for i, d := range data {
		if err := appendColumn(cols[i], d); err != nil {
			return &Error{Stage: StageAppend, Column: i, Err: err}
		}
	}
	return nil
}

// appendColumn appends d, a slice of rows, to c. clickhouse-go's
// Array.Append hands each row to AppendRow as a reflect.Value, which
// misses AppendRow's typed path for a []T row and appends every element
// through reflection (9.5 % of the collector's CPU at `bench max`'s
// 200,000 VMs, for the histograms' bins and counts); given the typed row
// itself, AppendRow takes that path.
func appendColumn(c column.Interface, d any) error {
	if a, ok := c.(*column.Array); ok {
		switch rows := d.(type) {
		case [][]float64:
			return appendArrayRows(a, rows)
		case [][]uint64:
			return appendArrayRows(a, rows)
		case [][]int64:
			return appendArrayRows(a, rows)
		}
	}
	_, err := c.Append(d)
	return err
}

func appendArrayRows[T any](a *column.Array, rows [][]T) error {
	for _, r := range rows {
		if err := a.AppendRow(r); err != nil {
			return err
		}
	}
	return nil
}

func send(b driver.Batch, cols []column.Interface, data []any) error {
	if len(cols) != len(data) {
		return columnCountError(cols, data)
	}
	if err := appendColumns(cols, data); err != nil {
		return err
	}
	if err := b.Send(); err != nil {
		return &Error{Stage: StageSend, Rows: b.Rows(), Err: err}
	}
	return nil
}

// take removes statement's kept batch from the pool and returns it, or nil
// if there is none for ctx.
func (p *Pool) take(ctx context.Context, statement string) *kept {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.mu.kept[statement]
	if k == nil {
		return nil
	}
	delete(p.mu.kept, statement)
	if k.ctx != ctx || ctx.Err() != nil {
		// Prepared for a context that may have ended, or this one has: a
		// kept batch's Send watches its context before it takes a
		// connection, and would close the one it last used, which may be
		// back in the pool and someone else's.
		return nil
	}
	if p.now().Sub(k.prepared) >= MaxAge {
		return nil // read the table's columns again
	}
	p.mu.reuses++
	return k
}

// put keeps k as statement's batch and drops the batches idle for MaxIdle
// Sends.
func (p *Pool) put(statement string, k *kept) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.sends++
	k.lastSend = p.mu.sends
	p.mu.kept[statement] = k
	// A few dozen statements at most, against an INSERT's round trip.
	now := p.now()
	for s, o := range p.mu.kept {
		if p.mu.sends-o.lastSend >= MaxIdle || now.Sub(o.prepared) >= MaxAge {
			delete(p.mu.kept, s) // would be prepared afresh anyway
		}
	}
}

// Clear drops every kept batch: the next Send of each statement prepares
// afresh and reads the server's header again.
func (p *Pool) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.mu.kept)
}

// Reuses is how many Sends ran on a kept batch.
func (p *Pool) Reuses() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.reuses
}

// Kept is the number of batches kept.
func (p *Pool) Kept() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.mu.kept)
}
