// Package revstream is the revocation stream's core (serverapi.PathRevocations):
// a bounded in-memory log of revocation events, numbered so that a client can
// resume after a cursor, and the Server-Sent Events writer that serves one
// subscriber from it. The auth server feeds the log from its informers; the
// Go test kit feeds its own.
package revstream

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/authframework/authframework/pkg/serverapi"
)

// Event is one event of the stream.
type Event = serverapi.RevocationEvent

// DefaultLogSize is how many events a Log keeps for resuming streams.
const DefaultLogSize = 65536

// Log holds the latest events of every scope (a TokenPolicy,
// "namespace/name"). Cursors are "<epoch>-<sequence>": the epoch is random
// per Log, so a cursor of another replica or of a restarted server is not
// resumed (the stream restarts with a snapshot).
type Log struct {
	mu      sync.Mutex
	epoch   string
	size    int
	seq     uint64 // of the last event appended
	entries []entry
	changed chan struct{}
}

type entry struct {
	seq   uint64
	scope string
	ev    Event
}

// NewLog returns an empty log keeping size events (DefaultLogSize when
// size <= 0), with epoch naming it in cursors.
func NewLog(epoch string, size int) *Log {
	if size <= 0 {
		size = DefaultLogSize
	}
	return &Log{epoch: epoch, size: size, changed: make(chan struct{})}
}

// Append adds ev to scope's events and wakes every stream.
func (l *Log) Append(scope string, ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.entries = append(l.entries, entry{seq: l.seq, scope: scope, ev: ev})
	if len(l.entries) >= 2*l.size {
		l.entries = append([]entry(nil), l.entries[len(l.entries)-l.size:]...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Log) cursor(seq uint64) string { return l.epoch + "-" + strconv.FormatUint(seq, 10) }

// parse reads a cursor of this log.
func (l *Log) parse(c string) (uint64, bool) {
	epoch, n, ok := strings.Cut(c, "-")
	if !ok || epoch != l.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}

// after returns scope's events after seq, the sequence of the last event
// looked at, and a channel closed at the next Append. ok is false when
// events after seq have been dropped or seq is in the future.
func (l *Log) after(seq uint64, scope, also string) (evs []Event, last uint64, changed <-chan struct{}, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.seq || len(l.entries) > 0 && seq+1 < l.entries[0].seq {
		return nil, l.seq, l.changed, false
	}
	// Entries are in sequence order: start after seq without looking at
	// what the stream has seen.
	start := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].seq > seq })
	for _, e := range l.entries[start:] {
		if e.scope == scope || also != "" && e.scope == also {
			ev := e.ev
			ev.Cursor = l.cursor(e.seq)
			evs = append(evs, ev)
		}
	}
	return evs, l.seq, l.changed, true
}

// last is the sequence of the last event.
func (l *Log) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Stream serves one subscriber of one scope.
type Stream struct {
	Log   *Log
	Scope string
	// AlsoScope, when set, is a second scope whose events the stream
	// carries (events every subscriber gets).
	AlsoScope string
	// Policy ("namespace/name") and Issuer are set on every event.
	Policy, Issuer string
	// Snapshot returns the scope's state now, as events: what a client that
	// cannot resume needs to know.
	Snapshot func() []Event
	// SnapshotSlots, when set, bounds the snapshots held at once: a stream
	// takes a slot before calling Snapshot and gives it back once the
	// snapshot is written (or the stream ends), so memory for snapshots is
	// bounded by the slots, not by the streams.
	SnapshotSlots chan struct{}
	// Until ends the stream (the caller's token expires).
	Until time.Time
	Clock clock.WithTicker
	// Heartbeat is how often a bookmark is sent, so the longest quiet time;
	// serverapi.RevocationHeartbeatSeconds when zero.
	Heartbeat time.Duration
	// WriteTimeout bounds each write of events: a client that stops reading
	// is cut off then instead of holding the stream (and what it was being
	// sent) for ever. DefaultWriteTimeout when zero. It is a network
	// deadline, so it runs on real time.
	WriteTimeout time.Duration
}

// DefaultWriteTimeout is Stream.WriteTimeout's default.
const DefaultWriteTimeout = 30 * time.Second

// Serve writes the stream until Until, the client going away, a write
// taking longer than WriteTimeout, or the client falling so far behind that
// the log dropped events it has not seen (it then reconnects and gets a
// snapshot). The server's write timeout is replaced by WriteTimeout per
// batch of events.
func (s Stream) Serve(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	wt := s.WriteTimeout
	if wt <= 0 {
		wt = DefaultWriteTimeout
	}
	hb := s.Heartbeat
	if hb <= 0 {
		hb = serverapi.RevocationHeartbeatSeconds * time.Second
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	cursor := r.Header.Get("Last-Event-ID")
	if cursor == "" {
		cursor = r.URL.Query().Get("cursor")
	}
	seq, resumable := s.Log.parse(cursor)
	evs, last, changed, ok := s.Log.after(seq, s.Scope, s.AlsoScope)
	held := false
	defer func() {
		if held {
			<-s.SnapshotSlots
		}
	}()
	if !resumable || !ok {
		if s.SnapshotSlots != nil {
			select {
			case s.SnapshotSlots <- struct{}{}:
				held = true
			case <-r.Context().Done():
				return
			}
		}
		// The position is taken before the state is read: an event that
		// lands in between is sent again after the snapshot, which applying
		// twice does not change.
		last = s.Log.last()
		at := s.Log.cursor(last)
		evs = append([]Event{{Type: serverapi.EventSnapshot, Cursor: at}}, s.Snapshot()...)
		for i := range evs[1:] {
			evs[i+1].Cursor = at
		}
		evs = append(evs, Event{Type: serverapi.EventSynced, Cursor: at})
		_, last, changed, _ = s.Log.after(last, s.Scope, s.AlsoScope) // only for changed; events after last come next round
	}
	// Both timers exist before the first event is written.
	beat := s.Clock.NewTicker(hb)
	defer beat.Stop()
	until := s.Clock.NewTimer(s.Until.Sub(s.Clock.Now()))
	defer until.Stop()
	for {
		// A deadline per batch, not for the stream: the server's own write
		// timeout would end a healthy stream, none would let a stuck one live.
		_ = rc.SetWriteDeadline(time.Now().Add(wt))
		for _, ev := range evs {
			if err := s.write(w, ev); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		evs = nil // what was sent is not kept while the stream waits
		if held {
			<-s.SnapshotSlots
			held = false
		}
		select {
		case <-changed:
		case <-beat.C():
			evs = []Event{{Type: serverapi.EventBookmark, Cursor: s.Log.cursor(last)}}
			continue
		case <-until.C():
			return
		case <-r.Context().Done():
			return
		}
		evs, last, changed, ok = s.Log.after(last, s.Scope, s.AlsoScope)
		if !ok {
			return
		}
	}
}

func (s Stream) write(w http.ResponseWriter, ev Event) error {
	ev.Policy, ev.Issuer = s.Policy, s.Issuer
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.Cursor, ev.Type, b)
	return err
}

// Reader reads the events of a stream as Serve frames them.
type Reader struct {
	r *bufio.Reader
}

// MaxEventBytes bounds one event (all its lines) a Reader accepts: a
// broken or hostile stream cannot make a client buffer without end.
const MaxEventBytes = 64 << 10

// NewReader reads events from r (a response body).
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, MaxEventBytes)} }

// Next returns the next event; io.EOF when the stream ended between events.
// An event whose `id:` or `event:` lines disagree with its data is an error.
func (rd *Reader) Next() (Event, error) {
	var id, typ, data string
	seen, size := false, 0
	for {
		raw, err := rd.r.ReadSlice('\n')
		size += len(raw)
		switch {
		case err == bufio.ErrBufferFull || size > MaxEventBytes:
			return Event{}, fmt.Errorf("an event longer than %d bytes", MaxEventBytes)
		case err == io.EOF && seen:
			return Event{}, io.ErrUnexpectedEOF
		case err != nil:
			return Event{}, err
		}
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		switch {
		case line == "" && !seen:
			continue
		case line == "":
			var ev Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				return Event{}, fmt.Errorf("event data: %w", err)
			}
			if ev.Cursor != id || ev.Type != typ {
				return Event{}, fmt.Errorf("event %q (id %q) carries data of %q (cursor %q)", typ, id, ev.Type, ev.Cursor)
			}
			return ev, nil
		case strings.HasPrefix(line, ":"): // an SSE comment
		default:
			seen = true
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				typ = value
			case "data":
				data += value
			}
		}
	}
}
