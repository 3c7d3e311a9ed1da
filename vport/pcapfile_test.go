package vport

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// pcapTestFrames are frames of several lengths, the last one longer than
// the snapshot length used below (it is captured cut).
func pcapTestFrames() [][]byte {
	var out [][]byte
	for i, n := range []int{60, 1, 1514, 0, 300} {
		f := make([]byte, n)
		for j := range f {
			f[j] = byte(i*31 + j)
		}
		out = append(out, f)
	}
	return out
}

// readAllPcap reads every frame of a pcap stream with pcapReader.
func readAllPcap(t *testing.T, data []byte) [][]byte {
	t.Helper()
	r, err := newPcapReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.checkEthernet(); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		f, err := r.next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(f))
	}
}

// TestPcapReaderAgreesWithGopacket reads files that gopacket's pcapgo
// writes, with microsecond and nanosecond timestamps, plain and gzipped,
// and a big-endian one written by hand.
func TestPcapReaderAgreesWithGopacket(t *testing.T) {
	frames := pcapTestFrames()
	write := func(t *testing.T, w *pcapgo.Writer) {
		if err := w.WriteFileHeader(PcapSnaplen, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(1, 2000), CaptureLength: len(f), Length: len(f)}
			if err := w.WritePacket(ci, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	var micros, nanos, zipped bytes.Buffer
	write(t, pcapgo.NewWriter(&micros))
	write(t, pcapgo.NewWriterNanos(&nanos))
	zw := gzip.NewWriter(&zipped)
	write(t, pcapgo.NewWriter(zw))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	big := bigEndianPcap(frames)
	for _, tc := range []struct {
		name string
		in   []byte
	}{{"micros", micros.Bytes()}, {"nanos", nanos.Bytes()}, {"gzip", zipped.Bytes()}, {"big-endian", big}} {
		t.Run(tc.name, func(t *testing.T) {
			got := readAllPcap(t, tc.in)
			if len(got) != len(frames) {
				t.Fatalf("read %d frames, want %d", len(got), len(frames))
			}
			for i := range got {
				if !bytes.Equal(got[i], frames[i]) {
					t.Errorf("frame %d differs: % x, want % x", i, got[i], frames[i])
				}
			}
		})
	}
}

func bigEndianPcap(frames [][]byte) []byte {
	be := binary.BigEndian
	b := be.AppendUint32(nil, pcapMagicMicros)
	b = be.AppendUint16(be.AppendUint16(b, 2), 4)
	b = append(b, make([]byte, 8)...)
	b = be.AppendUint32(be.AppendUint32(b, PcapSnaplen), pcapLinkEthernet)
	for _, f := range frames {
		b = be.AppendUint32(be.AppendUint32(b, 1), 2)
		b = be.AppendUint32(be.AppendUint32(b, uint32(len(f))), uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// TestPcapWriterAgreesWithGopacket writes frames with pcapWriter, one cut
// at a short snapshot length, and reads them back with pcapgo.
func TestPcapWriterAgreesWithGopacket(t *testing.T) {
	const snaplen = 1000
	frames := pcapTestFrames()
	var buf bytes.Buffer
	w, err := newPcapWriter(&buf, snaplen)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 123456789)
	for _, f := range frames {
		if err := w.write(ts, f[:min(len(f), snaplen)], len(f)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != snaplen {
		t.Errorf("link type %s snaplen %d, want Ethernet %d", r.LinkType(), r.Snaplen(), snaplen)
	}
	for i, f := range frames {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := f[:min(len(f), snaplen)]
		if !bytes.Equal(data, want) || ci.Length != len(f) || !ci.Timestamp.Equal(ts.Truncate(time.Microsecond)) {
			t.Errorf("frame %d: %d of %d bytes at %v, want %d of %d at %v", i, len(data), ci.Length, ci.Timestamp, len(want), len(f), ts)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

// TestPcapReaderRefusesBadFiles checks that a broken file is an error
// that says what is wrong, never a panic or a huge allocation.
func TestPcapReaderRefusesBadFiles(t *testing.T) {
	good := bigEndianPcap(pcapTestFrames()[:1])
	mod := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		header  bool // the file header is refused
		wantErr error
	}{
		{name: "empty", in: nil, header: true, wantErr: io.EOF},
		{name: "short header", in: good[:10], header: true, wantErr: io.ErrUnexpectedEOF},
		{name: "bad magic", in: mod(0, 0x12345678), header: true, wantErr: errPcapFormat},
		{name: "version 3", in: mod(4, 3<<16|4), header: true, wantErr: errPcapFormat},
		{name: "beyond snaplen", in: mod(pcapFileHdrLen+8, PcapSnaplen+1), wantErr: errPcapFormat},
		{name: "beyond 256 KiB", in: func() []byte {
			b := mod(16, 1<<31) // a snapshot length that allows it
			binary.BigEndian.PutUint32(b[pcapFileHdrLen+8:], 1<<30)
			binary.BigEndian.PutUint32(b[pcapFileHdrLen+12:], 1<<30)
			return b
		}(), wantErr: errPcapFormat},
		{name: "captured more than sent", in: mod(pcapFileHdrLen+12, 10), wantErr: errPcapFormat},
		{name: "truncated record header", in: good[:pcapFileHdrLen+5], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated frame", in: good[:len(good)-1], wantErr: io.ErrUnexpectedEOF},
		{name: "no frame after its header", in: good[:pcapFileHdrLen+pcapRecordHdrLen], wantErr: io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newPcapReader(bytes.NewReader(tc.in))
			if !tc.header {
				if err != nil {
					t.Fatalf("file header: %v", err)
				}
				_, err = r.next()
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// FuzzPcapReader reads arbitrary bytes as a pcap stream: it never panics,
// and no frame it returns is longer than the bound.
func FuzzPcapReader(f *testing.F) {
	f.Add(bigEndianPcap(pcapTestFrames()))
	var b bytes.Buffer
	w, _ := newPcapWriter(&b, PcapSnaplen)
	for _, fr := range pcapTestFrames() {
		w.write(time.Unix(0, 0), fr, len(fr))
	}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := newPcapReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		for range 1000 {
			fr, err := r.next()
			if err != nil {
				return
			}
			if len(fr) > pcapMaxCapture {
				t.Fatalf("a frame of %d bytes", len(fr))
			}
		}
	})
}

// TestPcapReaderCorpus reads every pcap file of the shared tcpdump corpus
// (many of them malformed) with pcapReader and with gopacket's pcapgo, the
// reference: each frame both read must be the same bytes, and a file the
// reference reads to its end cleanly must give pcapReader the same frames.
// pcapReader may refuse a record the reference passes only for a named
// format error (a capture longer than its wire length or snapshot length).
func TestPcapReaderCorpus(t *testing.T) {
	dir := "../../shared/corpus/tcpdump-pcap"
	if d := os.Getenv("OVSXDP_PCAP_CORPUS"); d != "" {
		dir = d
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.pcap"))
	if len(names) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no capture corpus in %s (CI=true requires it)", dir)
		}
		t.Skipf("no capture corpus in %s (set OVSXDP_PCAP_CORPUS to its directory)", dir)
	}
	var files, frames, refused int
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		ref, refErr := pcapgo.NewReader(bytes.NewReader(data))
		got, gotErr := newPcapReader(bytes.NewReader(data))
		if refErr != nil || gotErr != nil {
			if (refErr == nil) != (gotErr == nil) && refErr == nil {
				t.Errorf("%s: the reference reads the header, pcapReader: %v", filepath.Base(name), gotErr)
			}
			continue
		}
		files++
		for i := 0; ; i++ {
			want, _, refErr := ref.ReadPacketData()
			fr, gotErr := got.next()
			if refErr != nil {
				break // whatever pcapReader makes of a record the reference refuses
			}
			if gotErr != nil {
				if !errors.Is(gotErr, errPcapFormat) {
					t.Errorf("%s: frame %d: the reference reads %d bytes, pcapReader: %v", filepath.Base(name), i, len(want), gotErr)
				}
				refused++
				break
			}
			if !bytes.Equal(fr, want) {
				t.Errorf("%s: frame %d differs from the reference's", filepath.Base(name), i)
				break
			}
			frames++
		}
	}
	t.Logf("%d files, %d frames read alike, %d records refused as format errors that the reference passed", files, frames, refused)
	if frames == 0 {
		t.Fatal("no frame read")
	}
}
