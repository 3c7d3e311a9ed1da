// Package ethtool reads and changes a network device's channels (its
// queue counts) and features (offloads) with the SIOCETHTOOL ioctl, as
// ethtool -l/-L and -k/-K do.
//
// Every buffer the kernel reads or writes is a heap slice whose address
// reaches the system call inside struct ifreq as a pointer, never as an
// integer computed before the call: a goroutine's stack moves when it
// grows, and an address taken as an integer of a value on it can be stale
// by the time the kernel writes there (the read comes back empty, or
// lands in memory that belongs to something else).
package ethtool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Commands of linux/ethtool.h.
const (
	cmdGStrings   = 0x1b
	cmdGSSetInfo  = 0x37
	cmdGFeatures  = 0x3a
	cmdSFeatures  = 0x3b
	cmdGChannels  = 0x3c
	cmdSChannels  = 0x3d
	ssFeatures    = 4  // ETH_SS_FEATURES
	gstringLen    = 32 // ETH_GSTRING_LEN
	maxFeatures   = 1024
	channelsWords = 9
)

// ErrUnknownFeature is returned when a change names a feature the device
// does not have.
var ErrUnknownFeature = errors.New("unknown feature")

// Handle is a socket for the ioctl, in the network namespace of the
// thread that opened it.
type Handle struct{ fd int }

// Open returns a handle for the calling thread's network namespace.
func Open() (*Handle, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ethtool socket: %w", err)
	}
	return &Handle{fd: fd}, nil
}

// Close closes the handle's socket.
func (h *Handle) Close() error { return unix.Close(h.fd) }

// ifreq is struct ifreq with ifr_data: the name, then a pointer, padded
// to the union's 24 bytes.
type ifreq struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// ioctl runs the ethtool command at the start of buf on dev; the kernel
// reads and writes buf.
func (h *Handle) ioctl(dev string, buf []byte) error {
	if len(dev) >= unix.IFNAMSIZ {
		return fmt.Errorf("device name %q: longer than %d bytes", dev, unix.IFNAMSIZ-1)
	}
	var ifr ifreq
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&buf[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(h.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// words is a buffer of n native-endian 32-bit words, the first cmd.
func words(cmd uint32, n int) []byte {
	b := make([]byte, 4*n)
	binary.NativeEndian.PutUint32(b, cmd)
	return b
}

func word(b []byte, i int) uint32 { return binary.NativeEndian.Uint32(b[4*i:]) }

func putWord(b []byte, i int, v uint32) { binary.NativeEndian.PutUint32(b[4*i:], v) }

// Channels are a device's queue counts, as ethtool -l shows them: the
// maximum of each kind and the count in use.
type Channels struct {
	MaxRx, MaxTx, MaxOther, MaxCombined uint32
	Rx, Tx, Other, Combined             uint32
}

// Channels returns dev's channels.
func (h *Handle) Channels(dev string) (Channels, error) {
	b := words(cmdGChannels, channelsWords)
	if err := h.ioctl(dev, b); err != nil {
		return Channels{}, fmt.Errorf("channels of %s: %w", dev, err)
	}
	return Channels{
		MaxRx: word(b, 1), MaxTx: word(b, 2), MaxOther: word(b, 3), MaxCombined: word(b, 4),
		Rx: word(b, 5), Tx: word(b, 6), Other: word(b, 7), Combined: word(b, 8),
	}, nil
}

// SetChannels sets the counts in use of dev's channels to c's (the
// maxima in c are ignored), as ethtool -L does.
func (h *Handle) SetChannels(dev string, c Channels) error {
	b := words(cmdSChannels, channelsWords)
	for i, v := range []uint32{c.Rx, c.Tx, c.Other, c.Combined} {
		putWord(b, 5+i, v)
	}
	if err := h.ioctl(dev, b); err != nil {
		return fmt.Errorf("set channels of %s to rx %d tx %d other %d combined %d: %w", dev, c.Rx, c.Tx, c.Other, c.Combined, err)
	}
	return nil
}

// featureNames returns dev's feature names in the kernel's order (a
// feature's index is its bit).
func (h *Handle) featureNames(dev string) ([]string, error) {
	// struct ethtool_sset_info: cmd, reserved, a 64-bit mask, then one
	// count per bit set in the mask.
	info := words(cmdGSSetInfo, 5)
	binary.NativeEndian.PutUint64(info[8:], 1<<ssFeatures)
	if err := h.ioctl(dev, info); err != nil {
		return nil, fmt.Errorf("feature count of %s: %w", dev, err)
	}
	n := int(word(info, 4))
	if n == 0 || n > maxFeatures {
		return nil, fmt.Errorf("feature count of %s: %d", dev, n)
	}
	// struct ethtool_gstrings: cmd, string set, count, then the strings.
	s := words(cmdGStrings, 3+n*gstringLen/4)
	putWord(s, 1, ssFeatures)
	putWord(s, 2, uint32(n))
	if err := h.ioctl(dev, s); err != nil {
		return nil, fmt.Errorf("feature names of %s: %w", dev, err)
	}
	if got := int(word(s, 2)); got != n {
		return nil, fmt.Errorf("feature names of %s: %d names for %d features", dev, got, n)
	}
	names := make([]string, n)
	for i := range names {
		raw := s[12+i*gstringLen : 12+(i+1)*gstringLen]
		end := 0
		for end < len(raw) && raw[end] != 0 {
			end++
		}
		names[i] = string(raw[:end])
	}
	return names, nil
}

// blocks is the number of 32-bit feature blocks for n features.
func blocks(n int) int { return (n + 31) / 32 }

// Features returns whether each of dev's features is active, by name
// (as ethtool -k shows them: tx-checksum-ip-generic, generic-receive-offload, ...).
func (h *Handle) Features(dev string) (map[string]bool, error) {
	names, err := h.featureNames(dev)
	if err != nil {
		return nil, err
	}
	// struct ethtool_gfeatures: cmd, size, then per block available,
	// requested, active, never_changed.
	nb := blocks(len(names))
	g := words(cmdGFeatures, 2+4*nb)
	putWord(g, 1, uint32(nb))
	if err := h.ioctl(dev, g); err != nil {
		return nil, fmt.Errorf("features of %s: %w", dev, err)
	}
	active := make(map[string]bool, len(names))
	for i, name := range names {
		if name != "" { // a bit the kernel does not name
			active[name] = word(g, 2+4*(i/32)+2)&(1<<(i%32)) != 0
		}
	}
	return active, nil
}

// SetFeatures requests each named feature of dev on or off, as ethtool
// -K does; a name dev does not have is an error wrapping
// ErrUnknownFeature, and nothing changes. Read Features back to learn
// what the device made of the request: a fixed feature stays as it is.
func (h *Handle) SetFeatures(dev string, want map[string]bool) error {
	names, err := h.featureNames(dev)
	if err != nil {
		return err
	}
	index := make(map[string]int, len(names))
	for i, name := range names {
		if name != "" {
			index[name] = i
		}
	}
	// struct ethtool_sfeatures: cmd, size, then per block valid and
	// requested.
	nb := blocks(len(names))
	s := words(cmdSFeatures, 2+2*nb)
	putWord(s, 1, uint32(nb))
	for name, on := range want {
		i, ok := index[name]
		if !ok {
			return fmt.Errorf("features of %s: %q: %w", dev, name, ErrUnknownFeature)
		}
		valid, req := 2+2*(i/32), 2+2*(i/32)+1
		putWord(s, valid, word(s, valid)|1<<(i%32))
		if on {
			putWord(s, req, word(s, req)|1<<(i%32))
		}
	}
	if err := h.ioctl(dev, s); err != nil {
		return fmt.Errorf("set features of %s: %w", dev, err)
	}
	return nil
}

// cmdGSet is ETHTOOL_GSET, the link settings of struct ethtool_cmd (11
// words), which Open vSwitch reads for a port's features.
const (
	cmdGSet   = 0x01
	gsetWords = 11
)

// Settings are a device's link settings, as ethtool shows them: the link
// modes (SUPPORTED_* and ADVERTISED_* bits of linux/ethtool.h) it
// supports, advertises and its partner advertises, its speed in Mb/s
// (SpeedUnknown when the driver does not know it), duplex, port and
// whether it negotiates.
type Settings struct {
	Supported, Advertising, PartnerAdvertising uint32
	Speed                                      uint32
	Duplex                                     uint8
	Port                                       uint8
	Autoneg                                    bool
}

// Values of Settings' fields (linux/ethtool.h).
const (
	SpeedUnknown uint32 = 0xffffffff
	DuplexHalf   uint8  = 0
	DuplexFull   uint8  = 1
	PortTP       uint8  = 0
	PortFibre    uint8  = 3
)

// Settings returns dev's link settings, as ethtool DEV shows them.
func (h *Handle) Settings(dev string) (Settings, error) {
	b := words(cmdGSet, gsetWords)
	if err := h.ioctl(dev, b); err != nil {
		return Settings{}, fmt.Errorf("link settings of %s: %w", dev, err)
	}
	s := Settings{
		Supported:          word(b, 1),
		Advertising:        word(b, 2),
		Speed:              uint32(binary.NativeEndian.Uint16(b[28:]))<<16 | uint32(binary.NativeEndian.Uint16(b[12:])),
		Duplex:             b[14],
		Port:               b[15],
		Autoneg:            b[18] != 0,
		PartnerAdvertising: word(b, 8),
	}
	return s, nil
}
