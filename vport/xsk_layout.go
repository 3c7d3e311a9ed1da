package vport

// The AF_XDP sockets of the xsk port kind are created by
// github.com/asavie/xdp v0.3.3 (xdp.NewSocket: socket, UMEM registration,
// ring setup and bind), but the port drives the four rings itself, because
// the library's ring accessors cannot be used on the packet path:
//
//   - Transmit panics on any sendto error other than EAGAIN/EBUSY, which is
//     what a link that goes down (ENETDOWN) or is deleted (ENXIO) returns,
//     and it gives up on the first EAGAIN/EBUSY instead of retrying;
//   - Complete frees completed frames without saying which, so the port
//     could not track the ownership of its tx frames;
//   - GetDescs scans every frame of the UMEM on each call;
//   - the ring indexes are read and written with plain loads and stores,
//     without the acquire/release ordering the kernel pairs them with.
//
// The rings are not reachable through the library's API, and once a socket
// is bound the kernel refuses to map them a second time (xsk_mmap returns
// EBUSY), so the port reads them through socketLayout, a mirror of the
// library's Socket struct. checkSocketLayout compares the mirror with the
// real struct field by field (names, offsets, kinds, sizes) through
// reflection before the first socket is opened, and refuses to go on if
// they differ, so a different library version fails with a clear error
// instead of corrupting memory.

import (
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
)

// socketLayout mirrors xdp.Socket of github.com/asavie/xdp v0.3.3.
type socketLayout struct {
	fd             int
	umem           []byte
	fillRing       umemRingLayout
	rxRing         descRingLayout
	txRing         descRingLayout
	completionRing umemRingLayout
	qidconfMap     *ebpf.Map
	xsksMap        *ebpf.Map
	program        *ebpf.Program
	ifindex        int
	numTransmitted int
	numFilled      int
	freeDescs      []bool
	options        xdp.SocketOptions
	rxDescs        []xdp.Desc
	getDescs       []xdp.Desc
}

// umemRingLayout mirrors the library's umemRing (fill and completion rings).
type umemRingLayout struct {
	Producer *uint32
	Consumer *uint32
	Descs    []uint64
}

// descRingLayout mirrors the library's rxTxRing (rx and tx rings).
type descRingLayout struct {
	Producer *uint32
	Consumer *uint32
	Descs    []xdp.Desc
}

var (
	layoutOnce sync.Once
	layoutErr  error
)

// checkSocketLayout reports whether socketLayout matches xdp.Socket. The
// answer is computed once.
func checkSocketLayout() error {
	layoutOnce.Do(func() {
		if err := sameLayout(reflect.TypeFor[xdp.Socket](), reflect.TypeFor[socketLayout](), "xdp.Socket"); err != nil {
			layoutErr = fmt.Errorf("github.com/asavie/xdp is not the v0.3.3 this port kind was built against (%v): %w", err, ErrNotSupported)
		}
	})
	return layoutErr
}

// sameLayout compares two types structurally: kinds and sizes, and for
// structs every field's name, offset and type, recursively through struct
// fields and the elements of pointers, slices and arrays. Named types from
// other packages (ebpf.Map) must be identical.
func sameLayout(real, mirror reflect.Type, path string) error {
	if real == mirror {
		return nil
	}
	if real.Kind() != mirror.Kind() || real.Size() != mirror.Size() {
		return fmt.Errorf("%s: %s (%d bytes) in the library, %s (%d bytes) expected", path, real.Kind(), real.Size(), mirror.Kind(), mirror.Size())
	}
	switch real.Kind() {
	case reflect.Struct:
		if real.NumField() != mirror.NumField() {
			return fmt.Errorf("%s: %d fields in the library, %d expected", path, real.NumField(), mirror.NumField())
		}
		for i := range real.NumField() {
			rf, mf := real.Field(i), mirror.Field(i)
			if rf.Name != mf.Name || rf.Offset != mf.Offset {
				return fmt.Errorf("%s: field %d is %s at offset %d in the library, %s at %d expected", path, i, rf.Name, rf.Offset, mf.Name, mf.Offset)
			}
			if err := sameLayout(rf.Type, mf.Type, path+"."+rf.Name); err != nil {
				return err
			}
		}
	case reflect.Pointer, reflect.Slice, reflect.Array:
		if real.Kind() == reflect.Array && real.Len() != mirror.Len() {
			return fmt.Errorf("%s: array of %d in the library, %d expected", path, real.Len(), mirror.Len())
		}
		return sameLayout(real.Elem(), mirror.Elem(), path+"[]")
	default:
		if real.PkgPath() != "" && real.PkgPath() != mirror.PkgPath() {
			return fmt.Errorf("%s: type %s in the library, %s expected", path, real, mirror)
		}
	}
	return nil
}

// layoutOf returns the mirror view of s. checkSocketLayout must have
// succeeded.
func layoutOf(s *xdp.Socket) *socketLayout {
	return (*socketLayout)(unsafe.Pointer(s))
}
