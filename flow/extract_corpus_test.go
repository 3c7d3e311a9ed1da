package flow

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// corpusDir is the shared capture corpus, relative to this package's
// directory: <project root>/../shared/corpus/tcpdump-pcap. The environment
// variable corpusEnv overrides it (for a checkout that lives elsewhere).
const (
	corpusDir = "../../shared/corpus/tcpdump-pcap"
	corpusEnv = "OVSXDP_PCAP_CORPUS"
)

// packetSource is what the pcap and pcapng readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// TestExtractCorpus replays every capture of the shared tcpdump corpus
// through Extract: every Ethernet frame must be extracted without a panic
// and satisfy the invariants, and agree with the gopacket reference where
// that reference calls it valid. Files and frames that cannot be replayed
// are counted by reason, not failed.
func TestExtractCorpus(t *testing.T) {
	dir := corpusDir
	if d := os.Getenv(corpusEnv); d != "" {
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("capture corpus %s is missing (CI=true requires it): %v", dir, err)
		}
		t.Skipf("capture corpus %s is missing (set %s to its directory): %v", dir, corpusEnv, err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}

	var c corpusCounts
	c.skippedFiles = map[string]int{}
	c.skippedFrames = map[string]int{}
	c.excluded = map[string]int{}
	for _, name := range names {
		if strings.HasSuffix(name, ".md") {
			continue
		}
		c.files++
		if err := c.replay(t, name); err != nil {
			c.skippedFiles[err.Error()]++
			t.Logf("%s: skipped the rest of the file: %v", filepath.Base(name), err)
		}
	}
	if c.files == 0 {
		t.Fatalf("no capture files in %s", dir)
	}
	t.Logf("%d files (%d with a read error), %d Ethernet frames extracted (%d of them snapped shorter than sent), "+
		"%d valid for the reference, %d agreed",
		c.files, sum(c.skippedFiles), c.frames, c.snapped, c.valid, c.agreed)
	logCounts(t, "files with a read error", c.skippedFiles)
	logCounts(t, "frames skipped", c.skippedFrames)
	logCounts(t, "frames the reference excludes", c.excluded)
	if c.valid == 0 {
		t.Errorf("no corpus frame was valid for the reference")
	}
}

// corpusCounts tallies a corpus replay.
type corpusCounts struct {
	files, frames, snapped, valid, agreed int
	skippedFiles                          map[string]int // by read error
	skippedFrames                         map[string]int // by reason (link type)
	excluded                              map[string]int // by the reference's reason
}

// maxSnaplen lets the pcap reader accept frames longer than a file's
// declared snap length, which some corpus files carry on purpose.
const maxSnaplen = 256 << 10

// replay extracts every Ethernet frame of one capture file and returns
// the error that stopped reading it early, if any.
func (c *corpusCounts) replay(t *testing.T, name string) error {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := openCapture(bufio.NewReader(f))
	if err != nil {
		return err
	}
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if lt := src.LinkType(); lt != layers.LinkTypeEthernet {
			c.skippedFrames[fmt.Sprintf("link type %v (%d)", lt, lt)]++
			continue
		}
		c.frames++
		if ci.CaptureLength < ci.Length {
			c.snapped++
		}
		valid, agreed, why := compareWithReference(t, data)
		switch {
		case agreed:
			c.valid++
			c.agreed++
		case valid:
			c.valid++
		default:
			c.excluded[firstWords(why)]++
		}
	}
}

// openCapture picks the pcap or pcapng reader by the file's magic number.
func openCapture(r *bufio.Reader) (packetSource, error) {
	magic, err := r.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read magic: %w", err)
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		return ng, nil
	}
	p, err := pcapgo.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	if p.Snaplen() < maxSnaplen {
		p.SetSnaplen(maxSnaplen)
	}
	return p, nil
}

// firstWords shortens a reference's exclusion reason to its layer and the
// start of gopacket's message, for counting.
func firstWords(s string) string {
	w := strings.Fields(s)
	return strings.Join(w[:min(len(w), 4)], " ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func logCounts(t *testing.T, what string, m map[string]int) {
	t.Helper()
	if len(m) == 0 {
		return
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\n\t%6d  %s", m[k], k)
	}
	t.Logf("%s (%d):%s", what, sum(m), b.String())
}
