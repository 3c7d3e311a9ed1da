package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// FuzzAppctl feeds a byte stream to the appctl protocol as one connection
// would bring it: requests are read and answered until the stream ends or
// a message closes the connection. Nothing may panic or loop, and each
// answer must be a JSON-RPC reply to its request: a JSON object with the
// request's id and either a result (the arguments, joined) or an error,
// a text that ends in a newline.
func FuzzAppctl(f *testing.F) {
	for _, seed := range []string{
		`{"id":0,"method":"version","params":[]}`, // what ovs-appctl -t ovs-vswitchd version sends
		`{"id":0,"method":"ofproto/trace","params":["br0","in_port=1,tcp","-generate"]}`,
		`{"id":"a","method":"fail","params":["x"]} {"id":[1,{"b":null}],"method":"echo","params":["}{\"\\"]}`,
		`{"id":1,"method":"echo","params":[1]}`,
		`{"id":1,"method":"echo"}`,
		`{"id":1,"result":"x","error":null}`,
		`{"id":1,"method":"echo","params":["\u00e9\ud83d\ude00"]}`,
		`[{"id":1}]`,
		`{"id":1,"method":"echo","params":["`,
	} {
		f.Add([]byte(seed))
	}
	h := func(ctx context.Context, req *Request) (string, error) {
		if req.Verb == "fail" {
			return "", errors.New("failed")
		}
		return strings.Join(req.Args, "|"), nil
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		s := newServer(h, appctl{}, 4096, slog.New(slog.NewTextHandler(io.Discard, nil)))
		r := bufio.NewReader(bytes.NewReader(stream))
		for range len(stream) + 1 { // each round consumes at least one byte
			msg, err := s.proto.read(r, s.limit)
			if err != nil {
				return
			}
			out, _, ok := s.proto.answer(s, msg)
			if !ok {
				return
			}
			// Decoded as the server does: of a member given twice, the
			// last counts.
			var m map[string]json.RawMessage
			var req struct {
				ID     any
				Method string
				Params []json.RawMessage
			}
			if err := json.Unmarshal(msg, &m); err != nil ||
				json.Unmarshal(m["id"], &req.ID) != nil || json.Unmarshal(m["method"], &req.Method) != nil || json.Unmarshal(m["params"], &req.Params) != nil {
				t.Fatalf("answered %q, which does not decode", msg)
			}
			// The arguments, if every one is a string.
			var args []string
			strs := true
			for _, p := range req.Params {
				var a string
				if !bytes.HasPrefix(p, []byte(`"`)) || json.Unmarshal(p, &a) != nil {
					strs = false
				}
				args = append(args, a)
			}
			var reply struct {
				ID     any
				Result *string
				Error  *string
			}
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&reply); err != nil || dec.More() {
				t.Fatalf("reply %q to %q is not one JSON-RPC reply: %v", out, msg, err)
			}
			want, _ := json.Marshal(req.ID)
			got, _ := json.Marshal(reply.ID)
			if !bytes.Equal(got, want) {
				t.Fatalf("reply %q to %q: id %s, want %s", out, msg, got, want)
			}
			switch {
			case (reply.Result == nil) == (reply.Error == nil):
				t.Fatalf("reply %q to %q: not one of result and error", out, msg)
			case reply.Error != nil && !strings.HasSuffix(*reply.Error, "\n"):
				t.Fatalf("reply %q: the error does not end in a newline", out)
			case reply.Result != nil && (req.Method == "fail" || !strs):
				t.Fatalf("reply %q to %q: a result for a failure", out, msg)
			case reply.Result != nil && *reply.Result != withNewline(strings.Join(args, "|")):
				t.Fatalf("reply %q to %q: result %q, want the arguments", out, msg, *reply.Result)
			}
		}
		t.Fatal("more requests than bytes")
	})
}
