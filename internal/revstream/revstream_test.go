package revstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/authframework/authframework/pkg/serverapi"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// sse is a stream opened by a test.
type sse struct {
	t    *testing.T
	resp *http.Response
	rd   *Reader
}

func open(t *testing.T, url, lastEventID string) *sse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	return &sse{t: t, resp: resp, rd: NewReader(resp.Body)}
}

func (s *sse) next() Event {
	s.t.Helper()
	ev, err := s.rd.Next()
	if err != nil {
		s.t.Fatalf("stream: %v", err)
	}
	return ev
}

type fixture struct {
	log   *Log
	clock *clocktesting.FakeClock
	url   string
	state []Event
}

func newFixture(t *testing.T, size int) *fixture {
	f := &fixture{log: NewLog("e1", size), clock: clocktesting.NewFakeClock(t0)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Stream{Log: f.log, Scope: "team/orders", Policy: "team/orders", Issuer: "https://auth.example.com/team/orders",
			Snapshot: func() []Event { return f.state }, Until: t0.Add(time.Hour), Clock: f.clock, Heartbeat: 10 * time.Second}.Serve(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func revoked(key string) Event {
	return Event{Type: serverapi.EventTokenRevoked, RevocationKey: key, Expiry: t0.Add(time.Hour).Unix()}
}

func TestSnapshotThenLive(t *testing.T) {
	f := newFixture(t, 0)
	f.log.Append("team/orders", revoked("k1"))
	f.state = []Event{revoked("k1"), {Type: serverapi.EventAccount, AccountUID: "u1", Disabled: true}}
	s := open(t, f.url, "")
	want := []string{serverapi.EventSnapshot, serverapi.EventTokenRevoked, serverapi.EventAccount, serverapi.EventSynced}
	var synced Event
	for _, typ := range want {
		ev := s.next()
		if ev.Type != typ || ev.Cursor != "e1-1" || ev.Policy != "team/orders" || ev.Issuer == "" {
			t.Fatalf("got %+v, want %s at e1-1", ev, typ)
		}
		synced = ev
	}
	// Another scope's events are not this stream's.
	f.log.Append("other/policy", revoked("x"))
	f.log.Append("team/orders", revoked("k2"))
	if ev := s.next(); ev.RevocationKey != "k2" || ev.Cursor != "e1-3" {
		t.Fatalf("live event %+v", ev)
	}
	// Resuming after the snapshot's cursor gives what came after it, no
	// snapshot.
	r := open(t, f.url, synced.Cursor)
	if ev := r.next(); ev.Type != serverapi.EventTokenRevoked || ev.RevocationKey != "k2" {
		t.Fatalf("resumed with %+v", ev)
	}
}

func TestResumeOrSnapshot(t *testing.T) {
	f := newFixture(t, 2)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		f.log.Append("team/orders", revoked(k))
	}
	// The log holds at least the last 2 events: resuming after e1-3 works.
	if ev := open(t, f.url, "e1-3").next(); ev.RevocationKey != "d" {
		t.Fatalf("resume after e1-3: %+v", ev)
	}
	for name, cursor := range map[string]string{
		"dropped":       "e1-0",
		"another epoch": "e2-4",
		"the future":    "e1-99",
		"garbage":       "not-a-cursor",
	} {
		if ev := open(t, f.url, cursor).next(); ev.Type != serverapi.EventSnapshot || ev.Cursor != "e1-5" {
			t.Errorf("%s (%s): %+v, want a snapshot at e1-5", name, cursor, ev)
		}
	}
}

func TestBookmarksAndEnd(t *testing.T) {
	f := newFixture(t, 0)
	s := open(t, f.url, "")
	s.next() // snapshot
	s.next() // synced
	stepWhenWaiting(t, f.clock, 10*time.Second)
	if ev := s.next(); ev.Type != serverapi.EventBookmark || ev.Cursor != "e1-0" {
		t.Fatalf("heartbeat %+v", ev)
	}
	// The stream ends when the caller's token expires.
	stepWhenWaiting(t, f.clock, time.Hour)
	for {
		ev, err := s.rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil || ev.Type != serverapi.EventBookmark {
			t.Fatalf("after the end: %+v, %v", ev, err)
		}
	}
}

// stepWhenWaiting moves the clock once the stream waits on its timers.
func stepWhenWaiting(t *testing.T, clk *clocktesting.FakeClock, d time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return clk.HasWaiters(), nil
	})
	if err != nil {
		t.Fatal("the stream does not wait")
	}
	clk.Step(d)
}

func TestReaderBoundsEvents(t *testing.T) {
	huge := "id: e1-1\nevent: token_revoked\ndata: " + strings.Repeat("x", MaxEventBytes) + "\n\n"
	if _, err := NewReader(strings.NewReader(huge)).Next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a huge line: %v", err)
	}
	many := "id: e1-1\nevent: token_revoked\n" + strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", 70) + "\n"
	if _, err := NewReader(strings.NewReader(many)).Next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("many lines: %v", err)
	}
	if _, err := NewReader(strings.NewReader("id: e1-1\nevent: bookmark\n")).Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("a cut event: %v", err)
	}
	ok := ": comment\n\nid: e1-1\nevent: bookmark\ndata: {\"type\":\"bookmark\",\"cursor\":\"e1-1\"}\n\n"
	if ev, err := NewReader(strings.NewReader(ok)).Next(); err != nil || ev.Type != serverapi.EventBookmark {
		t.Errorf("a good event: %+v %v", ev, err)
	}
}

// TestStuckClientIsCutOff: a client that stops reading does not hold its
// stream: the write deadline ends it.
func TestStuckClientIsCutOff(t *testing.T) {
	log := NewLog("e1", 0)
	state := make([]Event, 200000) // far more than the socket buffers hold
	for i := range state {
		state[i] = revoked(strconv.Itoa(i))
	}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		Stream{Log: log, Scope: "team/orders", Snapshot: func() []Event { return state }, Until: t0.Add(time.Hour),
			Clock: clocktesting.NewFakeClock(t0), WriteTimeout: 50 * time.Millisecond}.Serve(w, r)
	}))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing from here on.
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream of a client that reads nothing is still being served")
	}
}
