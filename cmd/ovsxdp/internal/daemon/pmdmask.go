package daemon

import (
	"fmt"
	"slices"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ovsdb"
	"github.com/ovsxdp/ovsxdp/datapath"
)

// maxMaskDigits bounds other_config:pmd-cpu-mask: 256 hexadecimal digits
// are 1,024 CPUs, as many as the kernel's affinity calls take here.
const maxMaskDigits = 256

// parsePMDCPUMask parses other_config:pmd-cpu-mask, a hexadecimal mask
// whose lowest bit is CPU 0, as taskset's (a leading 0x is optional). It
// returns the CPUs it selects in ascending order.
func parsePMDCPUMask(s string) ([]int, error) {
	digits, off := s, 0
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, off = s[2:], 2
	}
	switch {
	case digits == "":
		return nil, fmt.Errorf("pmd-cpu-mask %q: no hexadecimal digits", s)
	case len(digits) > maxMaskDigits:
		return nil, fmt.Errorf("pmd-cpu-mask %q: %d hexadecimal digits, at most %d (%d CPUs)", s, len(digits), maxMaskDigits, 4*maxMaskDigits)
	}
	var cpus []int
	for i := len(digits) - 1; i >= 0; i-- {
		c := digits[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return nil, fmt.Errorf("pmd-cpu-mask %q: %q at position %d is not a hexadecimal digit", s, c, off+i+1)
		}
		for bit := range 4 {
			if v&(1<<bit) != 0 {
				cpus = append(cpus, 4*(len(digits)-1-i)+bit)
			}
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("pmd-cpu-mask %q selects no CPU", s)
	}
	return cpus, nil
}

// applyPMDMask pins the poll threads to the CPUs of the Open_vSwitch row's
// other_config:pmd-cpu-mask when it changed, as ovs-vswitchd pins its PMD
// threads to the mask's cores: thread i to the mask's i-th CPU (modulo
// their number). CPUs the process may not run on are left out, with a
// warning. Without a mask, or with one that selects no CPU the process may
// run on (an error), the threads run on any CPU.
func (s *ovsdbSync) applyPMDMask(root ovsdb.Row) {
	v, _ := root.Map("other_config")["pmd-cpu-mask"].(string)
	if s.pmdMask != nil && *s.pmdMask == v {
		return
	}
	s.pmdMask = &v
	var cpus []int
	if v != "" {
		want, err := parsePMDCPUMask(v)
		if err != nil {
			s.log.Error("ovsdb: other_config:pmd-cpu-mask ignored: the poll threads run on any CPU", "err", err)
		}
		allowed := datapath.AllowedCPUs()
		var left []int
		for _, c := range want {
			if slices.Contains(allowed, c) {
				cpus = append(cpus, c)
			} else {
				left = append(left, c)
			}
		}
		if len(left) > 0 {
			s.log.Warn("ovsdb: other_config:pmd-cpu-mask: CPUs the process may not run on are left out", "pmd-cpu-mask", v, "left-out", fmt.Sprint(left), "allowed", fmt.Sprint(allowed))
		}
		if err == nil && len(cpus) == 0 {
			s.log.Error("ovsdb: other_config:pmd-cpu-mask ignored: it selects no CPU the process may run on; the poll threads run on any CPU", "pmd-cpu-mask", v)
		}
	}
	if err := s.d.threads.SetCPUs(cpus); err != nil {
		s.log.Error("ovsdb: cannot pin the poll threads", "pmd-cpu-mask", v, "err", err)
		return
	}
	if len(cpus) > 0 {
		s.log.Info("ovsdb: poll threads pinned", "pmd-cpu-mask", v, "cpus", fmt.Sprint(cpus))
	} else if v == "" {
		s.log.Info("ovsdb: poll threads run on any CPU (no other_config:pmd-cpu-mask)")
	}
}
