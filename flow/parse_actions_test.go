package flow

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// outputsFlow returns a flow with n output actions to ports 1..n.
func outputsFlow(n int) string {
	var b strings.Builder
	b.WriteString("in_port=9999,actions=")
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		b.WriteString("output:" + strconv.Itoa(i))
	}
	return b.String()
}

// TestActionLimit checks that a flow keeps every action ovs-ofctl accepts
// (100 outputs, and MaxActions), and that a flow with more than MaxActions
// is refused when parsed, naming the limit, where ovs-ofctl refuses it too.
func TestActionLimit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		inN    int
		wantOK bool
	}{
		{"100 outputs", 100, true},
		{"at the limit", MaxActions, true},
		{"over the limit", MaxActions + 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFlow(outputsFlow(tt.inN), CmdAdd)
			if tt.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				if len(f.Actions) != tt.inN {
					t.Fatalf("%d actions kept of %d", len(f.Actions), tt.inN)
				}
				var rec recordOutputs
				if _, v := Execute(BuildFrame(&Key{DlType: EthTypeIPv4, NwProto: IPProtoUDP, NwTTL: 64}), &Key{}, &Offsets{}, f.Actions, &rec); v != VerdictOK || len(rec) != tt.inN {
					t.Errorf("execute: verdict %s, %d outputs; want ok, %d", v, len(rec), tt.inN)
				}
				return
			}
			var se *SyntaxError
			if !errors.Is(err, ErrTooManyActions) || !errors.As(err, &se) || !strings.Contains(err.Error(), strconv.Itoa(MaxActions)) {
				t.Fatalf("err = %v, want ErrTooManyActions naming %d", err, MaxActions)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error of %d bytes echoes the action list", len(err.Error()))
			}
		})
	}

	bin := ofctlBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, n := range []int{100, MaxActions, MaxActions + 1} {
		if r := runOfctl(ctx, bin, outputsFlow(n)); r.ok != (n <= MaxActions) {
			t.Errorf("ovs-ofctl parse-flow with %d outputs: accepted %v (%s), ovsxdp's limit is %d", n, r.ok, r.reason, MaxActions)
		}
	}
}

// recordOutputs records the ports output to.
type recordOutputs []uint32

func (r *recordOutputs) Output(port uint32, _ []byte) { *r = append(*r, port) }
