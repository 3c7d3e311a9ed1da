package flow

import (
	"errors"
	"strings"
	"testing"
)

// TestSyntaxErrorClipsLongInput: an error about a huge token repeats only
// a short prefix of it, with its length, and keeps the position and the
// reason.
func TestSyntaxErrorClipsLongInput(t *testing.T) {
	huge := strings.Repeat("9", 1<<20)
	tests := []struct {
		name, in   string
		wantReason string
	}{
		{"unknown field", "ip," + huge + "x=1,actions=drop", "unknown field"},
		{"bad IP", "ip,nw_dst=" + huge + ",actions=drop", "invalid IP address"},
		{"bad prefix", "ip,nw_dst=10.0.0.1/" + huge + ",actions=drop", "invalid prefix length"},
		{"number too big", "priority=" + huge + ",actions=drop", "does not fit"},
		{"bad port", "in_port=x" + huge + ",actions=drop", "unknown port"},
		{"unknown action", "ip,actions=x" + huge, "unknown action"},
		{"bad tcp flags", "tcp,tcp_flags=+" + huge + ",actions=drop", "unknown TCP flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFlow(tt.in, CmdAdd)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			msg := err.Error()
			if len(msg) > 400 {
				t.Errorf("the error is %d bytes long: %.300s", len(msg), msg)
			}
			if !strings.Contains(msg, tt.wantReason) || !strings.Contains(msg, "bytes)") || !strings.HasPrefix(msg, "flow: at column ") {
				t.Errorf("error %q lacks the column, the reason %q or the token's length", msg, tt.wantReason)
			}
			if se.Token != tt.in[se.Pos:se.Pos+len(se.Token)] {
				t.Errorf("Token is not the text at Pos %d", se.Pos)
			}
		})
	}
	// A short token is quoted whole, as before.
	_, err := ParseFlow("ip,nw_dst=10.0.0.300,actions=drop", CmdAdd)
	if want := `flow: at column 4 "nw_dst=10.0.0.300": invalid IP address "10.0.0.300"`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
