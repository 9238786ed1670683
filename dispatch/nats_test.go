package dispatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outboxd/outboxd/dispatch"
	"github.com/outboxd/outboxd/dispatch/dispatchtest"
)

// The NATS server this machine runs (127.0.0.1:4222, JetStream on); CI's
// machine starts it before the run.
const natsURL = "nats://127.0.0.1:4222"

func TestNATSConformance(t *testing.T) {
	conn, err := nats.Connect(natsURL, nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("the NATS conformance test needs a NATS server with JetStream at %s: %v", natsURL, err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	dispatchtest.Run(t, func(t *testing.T) dispatchtest.Subject {
		ctx := context.Background()
		name := "OUTBOXD_TEST_" + strings.ReplaceAll(uuid.NewString(), "-", "")
		subject := "outboxd-test." + name
		stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{subject}, Storage: jetstream.MemoryStorage, Duplicates: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
		d, err := dispatch.NewNATS(&dispatch.NATSConfig{URL: natsURL, Subject: subject})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		return dispatchtest.Subject{Destination: d, Dedupes: true, Received: func() []dispatchtest.Received {
			info, err := stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []dispatchtest.Received
			for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
				m, err := stream.GetMsg(ctx, seq)
				if err != nil {
					continue
				}
				out = append(out, dispatchtest.Received{IdempotencyKey: m.Header.Get(jetstream.MsgIDHeader), Payload: m.Data})
			}
			return out
		}}
	})
}

func TestNATSWithoutStreamRetries(t *testing.T) {
	d, err := dispatch.NewNATS(&dispatch.NATSConfig{URL: natsURL, Subject: "outboxd-test.nobody-listens." + uuid.NewString(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k", Payload: []byte("x")})
	if res.Outcome != dispatch.Retry || res.Err == nil {
		t.Fatalf("%+v", res)
	}
}

// With no server to reach, an attempt says so, without the URL's token:
// it said "nats: headers not supported by this server".
func TestNATSUnreachableSaysSo(t *testing.T) {
	d, err := dispatch.NewNATS(&dispatch.NATSConfig{URL: "nats://S3cretTok@127.0.0.1:1", Subject: "outboxd-test.x", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for range 2 {
		res := d.Deliver(context.Background(), dispatch.Message{IdempotencyKey: "k", Payload: []byte("x")})
		if res.Outcome != dispatch.Retry || res.Err == nil || !strings.Contains(res.Err.Error(), "not connected to NATS nats://") || !strings.Contains(res.Err.Error(), "127.0.0.1:1 (") ||
			strings.Contains(res.Err.Error(), "S3cretTok") {
			t.Fatalf("%+v", res)
		}
		t.Log(res.Err)
	}
}

// A token in a NATS URL stays out of NewNATS's error.
func TestNATSErrorDoesNotCarryURLToken(t *testing.T) {
	_, err := dispatch.NewNATS(&dispatch.NATSConfig{URL: "nats://S3cretTok@127.0.0.1:notaport"})
	if err == nil {
		t.Fatal("an invalid port accepted")
	}
	if strings.Contains(err.Error(), "S3cretTok") {
		t.Fatalf("token in the error: %v", err)
	}
}

// A nil config means every default (the local server), not a panic.
func TestNewNATSNilConfigMeansDefaults(t *testing.T) {
	d, err := dispatch.NewNATS(nil)
	if err != nil {
		t.Fatalf("NewNATS(nil): %v", err)
	}
	d.Close()
}
