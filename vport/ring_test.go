package vport

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"
)

func newTestRing(t testing.TB, size, frameSize int) *ring {
	t.Helper()
	r, err := newRing(size, frameSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.close() })
	return r
}

// seqFrame returns a frame of size bytes that carries producer id and
// sequence number seq, with a check byte at the end.
func seqFrame(buf []byte, id byte, seq uint32) []byte {
	buf[0] = id
	binary.BigEndian.PutUint32(buf[1:5], seq)
	buf[len(buf)-1] = id ^ byte(seq) ^ byte(seq>>8) ^ byte(seq>>16) ^ byte(seq>>24)
	return buf
}

// readSeqFrame is the inverse of seqFrame; ok is false for a torn frame.
func readSeqFrame(f []byte) (id byte, seq uint32, ok bool) {
	if len(f) < 6 {
		return 0, 0, false
	}
	id, seq = f[0], binary.BigEndian.Uint32(f[1:5])
	return id, seq, f[len(f)-1] == id^byte(seq)^byte(seq>>8)^byte(seq>>16)^byte(seq>>24)
}

func TestRingFullEmpty(t *testing.T) {
	r := newTestRing(t, 4, 64)
	bufs, sizes := batchBufs(8, 64)
	if n, d, b := r.pop(bufs, sizes); n != 0 || d != 0 || b != 0 {
		t.Errorf("pop of an empty ring = %d, %d, %d", n, d, b)
	}
	if r.ready() || r.len() != 0 {
		t.Errorf("empty ring: ready %v, len %d", r.ready(), r.len())
	}
	frames := testFrames(6, 60)
	steps := []struct {
		name      string
		push      int // frames pushed from frames[next:]
		pop       int // then popped, with a batch of this size
		wantTaken int
		wantLen   int // after the push
		wantPop   int
	}{
		{name: "fill and overflow", push: 6, wantTaken: 4, wantLen: 4},
		{name: "full ring takes none", push: 2, wantTaken: 0, wantLen: 4},
		{name: "partial pop", pop: 3, wantLen: 4, wantPop: 3},
		{name: "refill the freed room", push: 5, wantTaken: 3, wantLen: 4},
		{name: "drain", pop: 8, wantLen: 4, wantPop: 4},
		{name: "empty again", pop: 8, wantLen: 0, wantPop: 0},
	}
	sent, recv := 0, 0
	var order [][]byte // frames in the order the ring took them
	for _, st := range steps {
		if st.push > 0 {
			batch := make([][]byte, st.push)
			for i := range batch {
				batch[i] = frames[(sent+i)%len(frames)]
			}
			taken, dropped, bytes := r.push(batch)
			if taken != st.wantTaken || dropped != 0 || bytes != 60*st.wantTaken {
				t.Errorf("%s: push = %d, %d, %d, want %d taken", st.name, taken, dropped, bytes, st.wantTaken)
			}
			order = append(order, batch[:taken]...)
			sent += taken
		}
		if st.push > 0 && r.len() != st.wantLen {
			t.Errorf("%s: len %d, want %d", st.name, r.len(), st.wantLen)
		}
		if st.pop > 0 {
			n, dropped, bytes := r.pop(bufs[:st.pop], sizes[:st.pop])
			if n != st.wantPop || dropped != 0 || bytes != 60*n {
				t.Errorf("%s: pop = %d, %d, %d, want %d", st.name, n, dropped, bytes, st.wantPop)
			}
			for i := range n {
				if string(bufs[i][:sizes[i]]) != string(order[recv+i]) {
					t.Errorf("%s: frame %d out of order", st.name, recv+i)
				}
			}
			recv += n
		}
	}
	if recv != sent {
		t.Errorf("received %d of %d frames", recv, sent)
	}
}

// TestRingWraparound moves frames in batches of every size through a small
// ring many times round, and checks their order, bytes and the ring's
// length on the way.
func TestRingWraparound(t *testing.T) {
	r := newTestRing(t, 8, 64)
	bufs, sizes := batchBufs(MaxBatch, 64)
	batch := make([][]byte, 0, MaxBatch)
	var sent, recv uint32
	for round := range 200 {
		batch = batch[:0]
		for i := range 1 + round%11 {
			batch = append(batch, seqFrame(make([]byte, 8+(int(sent)+i)%56), 0, sent+uint32(i)))
		}
		before := r.len()
		taken, _, _ := r.push(batch)
		if want := min(len(batch), 8-before); taken != want {
			t.Fatalf("round %d: took %d of %d with %d queued, want %d", round, taken, len(batch), before, want)
		}
		sent += uint32(taken)
		if r.len() != int(sent-recv) {
			t.Fatalf("round %d: len %d, want %d", round, r.len(), sent-recv)
		}
		lim := 1 + round%5
		n, _, _ := r.pop(bufs[:lim], sizes[:lim])
		for i := range n {
			_, seq, ok := readSeqFrame(bufs[i][:sizes[i]])
			if !ok || seq != recv || sizes[i] != 8+int(recv)%56 {
				t.Fatalf("round %d: frame seq %d size %d ok %v, want seq %d", round, seq, sizes[i], ok, recv)
			}
			recv++
		}
	}
	if sent < 5*8 {
		t.Errorf("only %d frames went round a ring of 8", sent)
	}
}

// TestRingMixedLengths moves batches of frames of every length around
// the in-line copies' (moveSmall: 17 to 64 bytes), and longer than a
// slot, through a small ring into buffers of every size around them, and
// checks each push's and pop's answers and the frames against a model of
// the ring: push drops what is longer than a slot, even on a full ring,
// and stops at the first frame the full ring cannot take; pop drops what
// does not fit its buffer and tries the next frame in the same buffer.
func TestRingMixedLengths(t *testing.T) {
	const frameSize = 70
	r := newTestRing(t, 8, frameSize)
	lengths := []int{0, 1, 16, 17, 31, 32, 33, 48, 63, 64, 65, 69, 70, 71, 100}
	rooms := []int{70, 16, 17, 32, 33, 64, 65, 0, 100}
	var queue [][]byte // the model: frames in the ring, in order
	seq := 0
	for round := range 300 {
		batch := make([][]byte, 1+round%13)
		for i := range batch {
			f := make([]byte, lengths[(seq+i*7)%len(lengths)])
			for j := range f {
				f[j] = byte(seq + i + j*3)
			}
			batch[i] = f
		}
		seq += len(batch)
		var wantTaken, wantDropped, wantBytes int
		for _, f := range batch {
			if len(f) > frameSize {
				wantTaken++
				wantDropped++
				continue
			}
			if len(queue) == 8 {
				break
			}
			queue = append(queue, f)
			wantTaken++
			wantBytes += len(f)
		}
		taken, dropped, bytes := r.push(batch)
		if taken != wantTaken || dropped != wantDropped || bytes != wantBytes {
			t.Fatalf("round %d: push = %d, %d, %d, want %d, %d, %d", round, taken, dropped, bytes, wantTaken, wantDropped, wantBytes)
		}
		nb := 1 + round%6
		bufs, sizes := make([][]byte, nb), make([]int, nb)
		for i := range bufs {
			bufs[i] = make([]byte, rooms[(round+i)%len(rooms)], 128)
			for j := range bufs[i][:cap(bufs[i])] {
				bufs[i][:cap(bufs[i])][j] = 0xee
			}
		}
		var want [][]byte
		wantDropped, wantBytes = 0, 0
		for len(queue) > 0 && len(want) < nb && wantDropped < nb {
			if f := queue[0]; len(f) <= len(bufs[len(want)]) {
				want = append(want, f)
				wantBytes += len(f)
			} else {
				wantDropped++
			}
			queue = queue[1:]
		}
		n, dropped, bytes := r.pop(bufs, sizes)
		if n != len(want) || dropped != wantDropped || bytes != wantBytes {
			t.Fatalf("round %d: pop = %d, %d, %d, want %d, %d, %d", round, n, dropped, bytes, len(want), wantDropped, wantBytes)
		}
		for i, f := range want {
			got := bufs[i][:cap(bufs[i])]
			if sizes[i] != len(f) || string(got[:len(f)]) != string(f) {
				t.Fatalf("round %d: frame %d is %x, want %x", round, i, got[:sizes[i]], f)
			}
			for j := len(f); j < len(got); j++ {
				if got[j] != 0xee {
					t.Fatalf("round %d: frame %d of %d bytes wrote byte %d", round, i, len(f), j)
				}
			}
		}
	}
}

// TestRingSideTaken checks that a caller finding its side owned by another
// gives up after a bounded number of tries, and that the other side is not
// held up.
func TestRingSideTaken(t *testing.T) {
	r := newTestRing(t, 4, 64)
	bufs, sizes := batchBufs(4, 64)
	frames := testFrames(2, 60)
	if taken, _, _ := r.push(frames); taken != 2 {
		t.Fatalf("push took %d, want 2", taken)
	}

	r.tail.Or(sideTaken) // a producer owns the tail
	if taken, _, _ := r.push(frames); taken != 0 {
		t.Errorf("push with the tail owned took %d, want 0", taken)
	}
	if n, _, _ := r.pop(bufs[:1], sizes[:1]); n != 1 {
		t.Errorf("pop with the tail owned = %d, want 1: consumers go on", n)
	}
	r.tail.And(^uint64(sideTaken))

	r.head.Or(sideTaken) // a consumer owns the head
	if n, _, _ := r.pop(bufs, sizes); n != 0 {
		t.Errorf("pop with the head owned = %d, want 0", n)
	}
	if taken, _, _ := r.push(testFrames(4, 60)); taken != 3 {
		t.Errorf("push with the head owned took %d, want 3: producers go on up to the free room", taken)
	}
	r.head.And(^uint64(sideTaken))
	if n, _, _ := r.pop(bufs, sizes); n != 4 {
		t.Errorf("pop = %d, want the 4 frames queued", n)
	}
}

// TestRingConcurrent runs producers and consumers on one ring at once and
// checks that every frame arrives exactly once, intact, and, for each
// consumer, in the order its producer sent it. With one producer and one
// consumer the order is total.
func TestRingConcurrent(t *testing.T) {
	tests := []struct {
		name                 string
		producers, consumers int
	}{
		{name: "spsc", producers: 1, consumers: 1},
		{name: "mpsc", producers: 3, consumers: 1},
		{name: "mpmc", producers: 2, consumers: 2},
	}
	const perProducer = 20000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRing(t, 64, 64)
			deadline := time.Now().Add(60 * time.Second)
			var wg sync.WaitGroup
			for id := range tt.producers {
				wg.Go(func() {
					frames := make([][]byte, MaxBatch)
					for i := range frames {
						frames[i] = make([]byte, 64)
					}
					for seq := uint32(0); seq < perProducer && time.Now().Before(deadline); {
						k := min(1+int(seq)%MaxBatch, perProducer-int(seq))
						for i := range k {
							seqFrame(frames[i], byte(id), seq+uint32(i))
						}
						taken, _, _ := r.push(frames[:k])
						seq += uint32(taken)
						if taken < k {
							runtime.Gosched() // full or busy: let a consumer run
						}
					}
				})
			}
			got := make([][]int, tt.consumers) // per consumer, per producer: frames seen
			for c := range tt.consumers {
				got[c] = make([]int, tt.producers)
			}
			var (
				mu       sync.Mutex
				received int
				failed   string
			)
			for c := range tt.consumers {
				wg.Go(func() {
					bufs, sizes := batchBufs(MaxBatch, 64)
					last := make([]int64, tt.producers)
					for i := range last {
						last[i] = -1
					}
					for time.Now().Before(deadline) {
						mu.Lock()
						done := received == tt.producers*perProducer || failed != ""
						mu.Unlock()
						if done {
							return
						}
						n, _, _ := r.pop(bufs, sizes)
						if n == 0 {
							runtime.Gosched()
							continue
						}
						for i := range n {
							id, seq, ok := readSeqFrame(bufs[i][:sizes[i]])
							if !ok || int(id) >= tt.producers || int64(seq) <= last[id] || (tt.consumers == 1 && int64(seq) != last[id]+1) {
								mu.Lock()
								failed = "torn, out of order or repeated frame"
								mu.Unlock()
								return
							}
							last[id] = int64(seq)
							got[c][id]++
						}
						mu.Lock()
						received += n
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if failed != "" {
				t.Fatal(failed)
			}
			for id := range tt.producers {
				total := 0
				for c := range tt.consumers {
					total += got[c][id]
				}
				if total != perProducer {
					t.Errorf("producer %d: %d frames received, want %d", id, total, perProducer)
				}
			}
			if r.len() != 0 {
				t.Errorf("%d frames left in the ring", r.len())
			}
		})
	}
}

func BenchmarkRingPushPop(b *testing.B) {
	r := newTestRing(b, 256, 2048)
	frames := testFrames(MaxBatch, 64)
	bufs, sizes := batchBufs(MaxBatch, 2048)
	b.ReportAllocs()
	for b.Loop() {
		r.push(frames)
		r.pop(bufs, sizes)
	}
	b.ReportMetric(float64(b.N*MaxBatch)/b.Elapsed().Seconds(), "pkts/s")
}

func BenchmarkRingPopEmpty(b *testing.B) {
	r := newTestRing(b, 256, 2048)
	bufs, sizes := batchBufs(MaxBatch, 2048)
	b.ReportAllocs()
	for b.Loop() {
		r.pop(bufs, sizes)
	}
}

// wrappingRing returns an empty ring of 8 slots of 64 bytes whose head
// and tail are at slot 6, past the wrap point, so that a loan of more than
// two frames wraps around, and 8 frames to push into it (seqFrame 0 to 7).
func wrappingRing(t *testing.T) (*ring, [][]byte) {
	t.Helper()
	r := newTestRing(t, 8, 64)
	bufs, sizes := batchBufs(MaxBatch, 64)
	frames := make([][]byte, 8)
	for i := range frames {
		frames[i] = seqFrame(make([]byte, 60), 1, uint32(i))
	}
	if taken, _, _ := r.push(frames[:6]); taken != 6 {
		t.Fatalf("push took %d, want 6", taken)
	}
	if n, _, _ := r.pop(bufs, sizes); n != 6 {
		t.Fatalf("pop = %d, want 6", n)
	}
	return r, frames
}

// TestRingLend lends frames out of a ring and gives them back piecemeal:
// their slots stay taken until the last is back, nothing else is lent or
// popped meanwhile, and what is not out on loan is not taken back.
func TestRingLend(t *testing.T) {
	r, frames := wrappingRing(t)
	out := make([][]byte, MaxBatch)
	bufs, sizes := batchBufs(MaxBatch, 64)
	if taken, _, _ := r.push(frames[:5]); taken != 5 {
		t.Fatalf("push took %d, want 5", taken)
	}
	n, nbytes := r.lend(out[:4])
	if n != 4 || nbytes != 4*60 {
		t.Fatalf("lend = %d frames, %d bytes; want 4, 240", n, nbytes)
	}
	for i, f := range out[:n] {
		if _, seq, ok := readSeqFrame(f); !ok || seq != uint32(i) || len(f) != 60 || cap(f) != 64+lendRoom {
			t.Errorf("lent frame %d: seq %d ok %v len %d cap %d, want seq %d, len 60, cap %d", i, seq, ok, len(f), cap(f), i, 64+lendRoom)
		}
	}
	lent := append([][]byte(nil), out[:n]...)

	// While they are out: their slots are taken, nothing is lent or popped.
	if taken, _, _ := r.push(frames); taken != 3 {
		t.Errorf("push while 4 of 8 slots are lent and 1 queued took %d, want 3", taken)
	}
	if m, _ := r.lend(out); m != 0 {
		t.Errorf("second lend = %d, want 0", m)
	}
	if m, _, _ := r.pop(bufs, sizes); m != 0 {
		t.Errorf("pop while frames are lent = %d, want 0", m)
	}

	// Frames that are not out on loan are not taken back.
	foreign := make([]byte, 60, 64+lendRoom)
	if back := r.giveBack([][]byte{foreign, nil, r.slots[(r.lentEnd)&r.mask].buf}); back != 0 {
		t.Errorf("giveBack of frames not lent took %d back", back)
	}
	// Resliced frames come back, each once, in any order.
	if back := r.giveBack([][]byte{lent[2][4:], lent[0][:10], lent[2]}); back != 2 {
		t.Errorf("giveBack took %d back, want 2", back)
	}
	if r.len() != 8 {
		t.Errorf("%d frames in the ring with 2 lent frames out, want 8", r.len())
	}
	if back := r.giveBack([][]byte{lent[3], lent[1]}); back != 2 {
		t.Errorf("giveBack took %d back, want 2", back)
	}
	if back := r.giveBack([][]byte{lent[3]}); back != 0 {
		t.Errorf("giveBack after the last took %d back", back)
	}
	// The slots are free, and the frames behind the loan come next.
	if r.len() != 4 {
		t.Errorf("%d frames in the ring, want 4", r.len())
	}
	m, _, _ := r.pop(bufs, sizes)
	want := []uint32{4, 0, 1, 2}
	if m != len(want) {
		t.Fatalf("pop = %d, want %d", m, len(want))
	}
	for i := range m {
		if _, seq, ok := readSeqFrame(bufs[i][:sizes[i]]); !ok || seq != want[i] {
			t.Errorf("frame %d: seq %d ok %v, want %d", i, seq, ok, want[i])
		}
	}
	if m, _ := r.lend(out); m != 0 {
		t.Errorf("lend from an empty ring = %d", m)
	}
}

// TestRingLendConcurrent has producers push while a consumer borrows
// frames and gives them back in pieces and out of order: every frame
// arrives once, intact and in order per producer.
func TestRingLendConcurrent(t *testing.T) {
	const producers, perProducer = 2, 20000
	r := newTestRing(t, 64, 64)
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for id := range producers {
		wg.Go(func() {
			frames := make([][]byte, MaxBatch)
			for i := range frames {
				frames[i] = make([]byte, 64)
			}
			for seq := uint32(0); seq < perProducer && time.Now().Before(deadline); {
				k := min(1+int(seq)%MaxBatch, perProducer-int(seq))
				for i := range k {
					seqFrame(frames[i], byte(id), seq+uint32(i))
				}
				taken, _, _ := r.push(frames[:k])
				seq += uint32(taken)
				if taken < k {
					runtime.Gosched()
				}
			}
		})
	}
	next := make([]uint32, producers)
	out := make([][]byte, MaxBatch)
	received := 0
	for received < producers*perProducer && time.Now().Before(deadline) {
		n, _ := r.lend(out)
		if n == 0 {
			runtime.Gosched()
			continue
		}
		for _, f := range out[:n] {
			id, seq, ok := readSeqFrame(f)
			if !ok || int(id) >= producers || seq != next[id] {
				t.Fatalf("frame from %d seq %d ok %v (want seq %d): torn or out of order", id, seq, ok, next[id])
			}
			next[id]++
			f[0] = 0xff // the borrower may write into the frame
		}
		// Back in two pieces, the second first.
		h := n / 2
		back := r.giveBack(out[h:n]) + r.giveBack(out[:h])
		if back != n {
			t.Fatalf("gave back %d of %d", back, n)
		}
		received += n
	}
	wg.Wait()
	if received != producers*perProducer {
		t.Errorf("received %d, want %d", received, producers*perProducer)
	}
	if r.len() != 0 {
		t.Errorf("%d frames left in the ring", r.len())
	}
}

// TestMoveSmall: small takes frames of 17 to 64 bytes that fit their
// buffer, and moveSmall copies what copy copies for them, for every
// length around its moves' (16, 32, 64 bytes) and into buffers with room
// to spare, and writes nothing past what it copied.
func TestMoveSmall(t *testing.T) {
	src := make([]byte, 130)
	for i := range src {
		src[i] = byte(i + 1)
	}
	for n := 0; n <= len(src); n++ {
		for _, room := range []int{n, n + 7, max(n-5, 0)} {
			ok := small(n, room)
			if want := n > 16 && n <= 64 && room >= n; ok != want {
				t.Fatalf("small(%d, %d) = %v, want %v", n, room, ok, want)
			}
			if !ok {
				continue
			}
			got, want := make([]byte, room+8), make([]byte, room+8)
			moveSmall(got[:room], src[:n])
			copy(want[:room], src[:n])
			if string(got) != string(want) {
				t.Fatalf("%d bytes into %d: %x, want %x", n, room, got, want)
			}
		}
	}
}

// TestRingGiveBackWhole: a loan given back whole and in ring order (the
// frames a batch's outputs all took), across the ring's wrap, frees its
// slots at once; the same number of frames with one that is not the
// next slot's is checked frame by frame, and takes back only the ones
// that are out.
func TestRingGiveBackWhole(t *testing.T) {
	r, frames := wrappingRing(t)
	out := make([][]byte, MaxBatch)
	for round := range 3 {
		if taken, _, _ := r.push(frames[:5]); taken != 5 {
			t.Fatalf("round %d: push took %d, want 5", round, taken)
		}
		n, _ := r.lend(out)
		if n != 5 {
			t.Fatalf("round %d: lend = %d, want 5", round, n)
		}
		lent := append([][]byte(nil), out[:n]...)
		if round == 1 {
			// Five frames, but the last is the first again: not the loan
			// in order, so each counts once.
			mixed := append(append([][]byte(nil), lent[:4]...), lent[0])
			if back := r.giveBack(mixed); back != 4 {
				t.Fatalf("round %d: giveBack of 4 lent frames and a repeat took %d back, want 4", round, back)
			}
			lent = lent[4:]
		}
		if back := r.giveBack(lent); back != len(lent) {
			t.Fatalf("round %d: giveBack took %d back, want %d", round, back, len(lent))
		}
		if r.len() != 0 || r.lentOut != 0 {
			t.Fatalf("round %d: %d frames queued, lent bits %b after the loan came back", round, r.len(), r.lentOut)
		}
	}
}

// TestRingGiveBackRun gives lent frames back by their place in the loan,
// in runs, mixed with giveBack's frames: each comes back once, a run
// past the loan's end is cut at it, and the slots are free when the last
// is back. A whole loan of 64 frames comes back in one run.
func TestRingGiveBackRun(t *testing.T) {
	r, frames := wrappingRing(t)
	out := make([][]byte, MaxBatch)
	bufs, sizes := batchBufs(MaxBatch, 64)
	if taken, _, _ := r.push(frames); taken != 8 {
		t.Fatalf("push took %d, want 8", taken)
	}
	n, _ := r.lend(out[:6])
	if n != 6 {
		t.Fatalf("lend = %d, want 6", n)
	}
	for _, step := range []struct {
		name        string
		first, n    int
		frame       int // given back with giveBack first, -1 for none
		want, queue int
	}{
		{name: "run", first: 1, n: 2, frame: -1, want: 2, queue: 8},
		{name: "again", first: 1, n: 2, frame: -1, want: 0, queue: 8},
		{name: "outside", first: 6, n: 1, frame: -1, want: 0, queue: 8},
		{name: "frame then run over it", first: 0, n: 1, frame: 0, want: 0, queue: 8},
		{name: "past the end", first: 3, n: 10, frame: -1, want: 3, queue: 2},
		{name: "after the last", first: 0, n: 6, frame: -1, want: 0, queue: 2},
	} {
		if step.frame >= 0 {
			if back := r.giveBack(out[step.frame : step.frame+1]); back != 1 {
				t.Fatalf("%s: giveBack took %d back, want 1", step.name, back)
			}
		}
		if back := r.giveBackRun(step.first, step.n); back != step.want {
			t.Errorf("%s: giveBackRun(%d, %d) took %d back, want %d", step.name, step.first, step.n, back, step.want)
		}
		if r.len() != step.queue {
			t.Errorf("%s: %d frames in the ring, want %d", step.name, r.len(), step.queue)
		}
	}
	if m, _, _ := r.pop(bufs, sizes); m != 2 {
		t.Fatalf("pop after the loan = %d, want 2", m)
	}
	for i := range 2 {
		if _, seq, ok := readSeqFrame(bufs[i][:sizes[i]]); !ok || seq != uint32(6+i) {
			t.Errorf("frame %d: seq %d ok %v, want %d", i, seq, ok, 6+i)
		}
	}

	big := newTestRing(t, 64, 64)
	many := make([][]byte, 64)
	for i := range many {
		many[i] = seqFrame(make([]byte, 60), 1, uint32(i))
	}
	if taken, _, _ := big.push(many); taken != 64 {
		t.Fatalf("push took %d, want 64", taken)
	}
	if n, _ := big.lend(many); n != 64 {
		t.Fatalf("lend = %d, want 64", n)
	}
	if back := big.giveBackRun(0, 64); back != 64 || big.len() != 0 {
		t.Errorf("giveBackRun of a loan of 64 took %d back, %d left in the ring; want 64, 0", back, big.len())
	}
}
