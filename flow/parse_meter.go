package flow

import (
	"fmt"
	"strconv"
	"strings"
)

// This file is the meter syntax of ovs-ofctl(8) (add-meter, mod-meter,
// del-meters, dump-meters): meter=ID, the flags kbps, pktps, burst and
// stats, then band= (or bands=) and each band as type=drop|dscp_remark,
// rate=N, burst_size=N, prec_level=N, separated by commas or spaces. The
// text dump-meters prints parses back to the same meter.

// MeterCommand is what a meter text is for: it says which parts it has.
type MeterCommand uint8

// The meter commands.
const (
	MeterCmdAdd    MeterCommand = iota // meter, flags and bands
	MeterCmdModify                     // meter, flags and bands
	MeterCmdDelete                     // meter only (all: every meter)
)

// ParseMeter parses a meter in ovs-ofctl's syntax, with its checks and
// messages. A delete's id may be all (MeterAll); none means every meter.
func ParseMeter(s string, cmd MeterCommand) (*MeterConfig, error) {
	c := &MeterConfig{}
	head, bands := s, ""
	if cmd != MeterCmdDelete {
		i := strings.Index(s, "band")
		if i < 0 {
			return nil, fmt.Errorf("must specify bands")
		}
		j := strings.IndexByte(s[i:], '=')
		if j < 0 {
			return nil, fmt.Errorf("must specify bands")
		}
		head, bands = s[:i], s[i+j+1:]
	}
	words := meterWords(head)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if cmd != MeterCmdDelete {
			if f, ok := meterFlagNames[w]; ok {
				c.Flags |= f
				continue
			}
		}
		if i+1 >= len(words) {
			return nil, fmt.Errorf("field %s missing value", w)
		}
		i++
		if w != "meter" {
			return nil, fmt.Errorf("unknown keyword %s", w)
		}
		id, err := parseMeterID(words[i])
		if err != nil {
			return nil, err
		}
		c.ID = id
	}
	if cmd == MeterCmdDelete {
		if c.ID == 0 {
			c.ID = MeterAll
		}
		return c, nil
	}
	if c.ID == 0 {
		return nil, fmt.Errorf("must specify 'meter'")
	}
	if c.Flags == 0 {
		return nil, fmt.Errorf("meter must specify either 'kbps' or 'pktps'")
	}
	if err := c.parseBands(meterWords(bands)); err != nil {
		return nil, err
	}
	return c, nil
}

// meterWords splits meter text at '=', ',' and white space.
func meterWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune("=, \t\r\n", r) })
}

var meterFlagNames = map[string]uint16{"kbps": MeterFlagKbps, "pktps": MeterFlagPktps, "burst": MeterFlagBurst, "stats": MeterFlagStats}

func parseMeterID(v string) (uint32, error) {
	switch v {
	case "all":
		return MeterAll, nil
	case "controller":
		return MeterController, nil
	case "slowpath":
		return MeterSlowpath, nil
	}
	n, err := parseNum(v, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid numeric format %s", v)
	}
	if n == 0 || n > uint64(MeterMax) {
		return 0, fmt.Errorf("invalid value for meter")
	}
	return uint32(n), nil
}

func (c *MeterConfig) parseBands(words []string) error {
	var b *MeterBand
	for i := 0; i < len(words); i += 2 {
		name := words[i]
		if i+1 >= len(words) {
			return fmt.Errorf("field %s missing value", name)
		}
		v := words[i+1]
		if name == "type" {
			switch v {
			case "drop":
				c.Bands = append(c.Bands, MeterBand{Type: MeterBandDrop})
			case "dscp_remark":
				c.Bands = append(c.Bands, MeterBand{Type: MeterBandDSCPRemark})
			default:
				return fmt.Errorf("field %s unknown value %s", name, v)
			}
			b = &c.Bands[len(c.Bands)-1]
			continue
		}
		if b == nil {
			return fmt.Errorf("band must start with the 'type' keyword")
		}
		bitsOf := map[string]int{"rate": 32, "burst_size": 32, "prec_level": 8}[name]
		if bitsOf == 0 {
			return fmt.Errorf("unknown keyword %s", name)
		}
		n, err := parseNum(v, bitsOf)
		if err != nil {
			return fmt.Errorf("invalid numeric format %s", v)
		}
		switch name {
		case "rate":
			b.Rate = uint32(n)
		case "burst_size":
			b.Burst = uint32(n)
		default:
			b.PrecLevel = uint8(n)
		}
	}
	if len(c.Bands) == 0 {
		return fmt.Errorf("meter must have bands")
	}
	for _, b := range c.Bands {
		switch {
		case b.Type == MeterBandDSCPRemark && b.PrecLevel == 0:
			return fmt.Errorf("'dscp_remark' band must have 'prec_level'")
		case b.Type != MeterBandDSCPRemark && b.PrecLevel != 0:
			return fmt.Errorf("Only 'dscp_remark' band may have 'prec_level'")
		case b.Rate == 0:
			return fmt.Errorf("band must have 'rate'")
		case c.Flags&MeterFlagBurst != 0 && b.Burst == 0:
			return fmt.Errorf("band must have 'burst_size' when 'burst' flag is set")
		case c.Flags&MeterFlagBurst == 0 && b.Burst != 0:
			return fmt.Errorf("band may have 'burst_size' only when 'burst' flag is set")
		}
	}
	return nil
}

// FormatMeter writes a meter as ovs-ofctl dump-meters does, with sep
// before each band: "\n" as dump-meters prints it, " " on one line.
func FormatMeter(c *MeterConfig, sep string) string {
	var b strings.Builder
	b.WriteString("meter=" + meterIDText(c.ID) + " ")
	for _, f := range []struct {
		bit  uint16
		name string
	}{{MeterFlagKbps, "kbps"}, {MeterFlagPktps, "pktps"}, {MeterFlagBurst, "burst"}, {MeterFlagStats, "stats"}} {
		if c.Flags&f.bit != 0 {
			b.WriteString(f.name + " ")
		}
	}
	if rest := c.Flags &^ MeterFlagsSupported; rest != 0 {
		b.WriteString("flags:0x" + strconv.FormatUint(uint64(rest), 16) + " ")
	}
	b.WriteString("bands=")
	for _, mb := range c.Bands {
		b.WriteString(sep + "type=")
		switch mb.Type {
		case MeterBandDrop:
			b.WriteString("drop")
		case MeterBandDSCPRemark:
			b.WriteString("dscp_remark")
		default:
			b.WriteString(strconv.Itoa(int(mb.Type)))
		}
		b.WriteString(" rate=" + strconv.FormatUint(uint64(mb.Rate), 10))
		if c.Flags&MeterFlagBurst != 0 {
			b.WriteString(" burst_size=" + strconv.FormatUint(uint64(mb.Burst), 10))
		}
		if mb.Type == MeterBandDSCPRemark {
			b.WriteString(" prec_level=" + strconv.Itoa(int(mb.PrecLevel)))
		}
	}
	return b.String()
}

func meterIDText(id uint32) string {
	switch {
	case id <= MeterMax:
		return strconv.FormatUint(uint64(id), 10)
	case id == MeterSlowpath:
		return "slowpath"
	case id == MeterController:
		return "controller"
	case id == MeterAll:
		return "all"
	}
	return "unknown"
}
