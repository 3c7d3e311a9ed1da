package flow

import (
	"strings"
)

// This file parses groups in ovs-ofctl's syntax (ovs-ofctl(8), "Group
// Syntax"): group_id=ID,type=TYPE[,selection_method=hash,fields(...)]
// or [,selection_method=dp_hash]
// followed by the buckets, each "bucket=" then its bucket_id:, weight:,
// watch_port:, watch_group: and actions=. Errors are SyntaxErrors with the
// position of the offending item, as for flows.

// GroupCommand is what a group string is parsed for.
type GroupCommand uint8

// The group commands.
const (
	GroupCmdAdd    GroupCommand = iota + 1 // add-group, add-groups
	GroupCmdModify                         // mod-group
	GroupCmdDelete                         // del-groups: only group_id (none: all groups)
)

// ParseGroup parses a group with the zero Parser.
func ParseGroup(s string, cmd GroupCommand) (*Group, error) {
	var p Parser
	return p.ParseGroup(s, cmd)
}

// ParseGroup parses one group in ovs-ofctl syntax for cmd. Buckets without
// a bucket_id get one as ovs-ofctl gives them (the lowest id no bucket
// after them uses, in order). For GroupCmdDelete the string holds at most
// group_id=ID (or group_id=all); without one it selects every group
// (ID GroupAllID).
func (p *Parser) ParseGroup(s string, cmd GroupCommand) (*Group, error) {
	g := &Group{ID: GroupAny}
	whole := token{pos: 0, end: len(s)}
	if cmd == GroupCmdDelete && strings.TrimSpace(s) == "" {
		g.ID = GroupAllID
		return g, nil
	}
	var starts []int
	for i := 0; ; {
		j := strings.Index(s[i:], "bucket=")
		if j < 0 {
			break
		}
		starts = append(starts, i+j)
		i += j + len("bucket=")
	}
	headEnd := len(s)
	if len(starts) > 0 {
		headEnd = starts[0]
		if cmd == GroupCmdDelete {
			t := token{pos: starts[0], end: len(s)}
			return nil, errAt(s, &t, "bucket is not needed")
		}
	}
	hasType := false
	var methodTok, paramTok, fieldsTok *token
	l := lexer{s: s, i: 0, end: headEnd}
	for {
		t, ok, err := l.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		name := t.key
		needValue := func() error {
			if !t.hasValue && !(t.paren && name == "fields") {
				return errAt(s, &t, "%s needs a value", name)
			}
			return nil
		}
		if cmd == GroupCmdDelete && name != "group_id" {
			return nil, errAt(s, &t, "%s is not needed", name)
		}
		switch name {
		case "group_id":
			if err := needValue(); err != nil {
				return nil, err
			}
			if t.value == "all" {
				g.ID = GroupAllID
				break
			}
			v, err := parseNum(t.value, 32)
			if err != nil {
				return nil, errAt(s, &t, "%v", err)
			}
			if v > GroupMax {
				return nil, errAt(s, &t, "invalid group id %d (0 to %d)", v, uint32(GroupMax))
			}
			g.ID = uint32(v)
		case "type":
			if err := needValue(); err != nil {
				return nil, err
			}
			switch t.value {
			case "all":
				g.Type = GroupAll
			case "select":
				g.Type = GroupSelect
			case "indirect":
				g.Type = GroupIndirect
			case "ff", "fast_failover":
				g.Type = GroupFastFailover
			default:
				return nil, errAt(s, &t, "invalid group type %s (all, select, indirect or fast_failover)", t.value)
			}
			hasType = true
		case "selection_method":
			if err := needValue(); err != nil {
				return nil, err
			}
			switch t.value {
			case "hash", "dp_hash":
			default:
				return nil, errAt(s, &t, "unknown selection method %s (hash or dp_hash)", t.value)
			}
			g.SelectionMethod = t.value
			methodTok = &t
		case "selection_method_param":
			if err := needValue(); err != nil {
				return nil, err
			}
			v, err := parseNum(t.value, 64)
			if err != nil {
				return nil, errAt(s, &t, "%v", err)
			}
			g.SelectionParam = v
			paramTok = &t
		case "fields":
			if err := needValue(); err != nil {
				return nil, err
			}
			if err := p.parseHashFields(s, &t, g); err != nil {
				return nil, err
			}
			fieldsTok = &t
		case "command_bucket_id":
			return nil, unsupportedAt(s, &t, "command_bucket_id (insert-buckets, remove-buckets) is not supported")
		default:
			return nil, errAt(s, &t, "unknown keyword %s", name)
		}
	}
	switch {
	case g.ID == GroupAny:
		return nil, errAt(s, &whole, "must specify a group_id")
	case cmd == GroupCmdDelete:
		return g, nil
	case g.ID == GroupAllID:
		return nil, errAt(s, &whole, "group_id=all is only for del-groups")
	case !hasType:
		return nil, errAt(s, &whole, "must specify a type")
	case fieldsTok != nil && g.SelectionMethod != "hash":
		return nil, errAt(s, fieldsTok, `fields may only be specified with "selection_method=hash"`)
	case paramTok != nil && g.SelectionMethod == "":
		return nil, errAt(s, paramTok, `selection_method_param is only allowed with "selection_method"`)
	case methodTok != nil && g.Type != GroupSelect:
		return nil, errAt(s, methodTok, "a selection method is only allowed for select groups")
	}
	for i, start := range starts {
		end := len(s)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		b, err := p.parseBucket(s, start, end, g.Type)
		if err != nil {
			return nil, err
		}
		g.Buckets = append(g.Buckets, *b)
	}
	if g.Type == GroupIndirect && len(g.Buckets) > 1 {
		t := token{pos: starts[1], end: len(s)}
		return nil, errAt(s, &t, "indirect groups can have at most one bucket")
	}
	assignBucketIDs(g.Buckets)
	seen := map[uint32]bool{}
	for i, b := range g.Buckets {
		if seen[b.ID] {
			t := token{pos: starts[i], end: len(s)}
			if i+1 < len(starts) {
				t.end = starts[i+1]
			}
			return nil, errAt(s, &t, "duplicate bucket_id %d (OFPGMFC_BUCKET_EXISTS)", b.ID)
		}
		seen[b.ID] = true
	}
	return g, nil
}

// assignBucketIDs gives each bucket without an id one, as ovs-ofctl does:
// from a pool that holds the ids of the buckets after the first such
// bucket and the ids it has handed out, the lowest free id.
func assignBucketIDs(bs []Bucket) {
	var used map[uint32]bool
	for i := range bs {
		if bs[i].ID != bucketIDNone {
			continue
		}
		if used == nil {
			used = map[uint32]bool{}
			for j := i + 1; j < len(bs); j++ {
				if bs[j].ID != bucketIDNone {
					used[bs[j].ID] = true
				}
			}
		}
		id := uint32(0)
		for used[id] {
			id++
		}
		used[id] = true
		bs[i].ID = id
	}
}

// parseBucket parses the bucket s[start:end] ("bucket=..." up to the next
// bucket).
func (p *Parser) parseBucket(s string, start, end int, typ GroupType) (*Bucket, error) {
	b := &Bucket{ID: bucketIDNone, WatchPort: PortNone, WatchGroup: GroupAny}
	if typ == GroupSelect {
		b.Weight = 1
	}
	whole := token{pos: start, end: end}
	ap := actionParser{p: p, s: s, vlan: true, table: TableAll}
	hasActions, weightGiven := false, (*token)(nil)
	l := lexer{s: s, i: start + len("bucket="), end: end}
	for {
		t, ok, err := l.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		num := func(bits int) (uint64, error) {
			if !t.hasValue {
				return 0, errAt(s, &t, "%s needs a value", t.key)
			}
			v, err := parseNum(t.value, bits)
			if err != nil {
				return 0, errAt(s, &t, "%v", err)
			}
			return v, nil
		}
		switch strings.ToLower(t.key) {
		case "weight":
			v, err := num(16)
			if err != nil {
				return nil, err
			}
			b.Weight = uint16(v)
			weightGiven = &t
		case "watch_port":
			port, err := p.parsePort(t.value)
			switch {
			case !t.hasValue || err != nil:
				return nil, errAt(s, &t, "%s: invalid watch_port", t.value)
			case port == PortController:
				return nil, unsupportedAt(s, &t, "watch_port:CONTROLLER is not supported")
			case port >= PortMax && port != PortNone:
				return nil, errAt(s, &t, "%s: invalid watch_port", t.value)
			}
			b.WatchPort = port
		case "watch_group":
			v, err := num(32)
			if err != nil {
				return nil, err
			}
			if v > GroupMax {
				return nil, errAt(s, &t, "invalid watch_group id %d", v)
			}
			b.WatchGroup = uint32(v)
		case "bucket_id":
			v, err := num(32)
			if err != nil {
				return nil, err
			}
			if v > BucketMax {
				return nil, errAt(s, &t, "invalid bucket_id id %d", v)
			}
			b.ID = uint32(v)
		case "actions", "action":
			hasActions = true
			if !t.hasValue {
				return nil, errAt(s, &t, "actions needs a value")
			}
			sub := lexer{s: s, i: t.valPos, end: t.end}
			for {
				at, ok, err := sub.next()
				if err != nil {
					return nil, err
				}
				if !ok {
					break
				}
				if err := ap.action(&at); err != nil {
					return nil, err
				}
			}
		default:
			hasActions = true
			if err := ap.action(&t); err != nil {
				return nil, err
			}
		}
	}
	if ap.pending != nil {
		return nil, ap.halfLoad(&ap.pending.tok)
	}
	if ap.dropTok != nil && ap.first != nil {
		return nil, errAt(s, ap.dropTok, `"drop" must not be accompanied by any other action or instruction`)
	}
	switch {
	case !hasActions:
		return nil, errAt(s, &whole, "bucket must specify actions")
	case len(ap.acts) > MaxActions:
		e := errAt(s, &whole, "%d actions, more than the %d a bucket may have", len(ap.acts), MaxActions)
		e.Err = ErrTooManyActions
		return nil, e
	case typ == GroupFastFailover && !b.hasLiveness():
		return nil, errAt(s, &whole, "fast failover bucket requires watch_port or watch_group")
	case weightGiven != nil && typ != GroupSelect && b.Weight != 0:
		return nil, errAt(s, weightGiven, "only select groups can have bucket weights")
	}
	b.Actions = ap.acts
	return b, nil
}

// parseHashFields parses the fields of selection_method=hash: t's value
// is a list of NAME or NAME=MASK.
func (p *Parser) parseHashFields(s string, t *token, g *Group) error {
	l := lexer{s: s, i: t.valPos, end: t.valPos + len(t.value)}
	for {
		ft, ok, err := l.next()
		if err != nil {
			return err
		}
		if !ok {
			g.Fields = g.sortedFields() // Open vSwitch's order, which it hashes and prints in
			return nil
		}
		h := hashableFields[ft.key]
		if h == nil {
			if fieldByName[ft.key] != nil {
				return unsupportedAt(s, &ft, "%s cannot be hashed by ovsxdp", ft.key)
			}
			return errAt(s, &ft, "unknown field %s", ft.key)
		}
		for _, have := range g.Fields {
			if have.Field == h.f {
				return errAt(s, &ft, "%s: duplicate field", ft.key)
			}
		}
		f := fieldByID[h.f]
		mask := ones(f.width())
		if ft.hasValue {
			m, reason := parseFieldValue(f, ft.value)
			switch {
			case reason != "":
				return errAt(s, &ft, "%s", reason)
			case m.isZero():
				return errAt(s, &ft, "%s: values are wildcards here and must not be all-zeros", ft.value)
			case !f.maskable && m != mask:
				return errAt(s, &ft, "%s: invalid mask for field %s", ft.value, h.name)
			}
			mask = m.and(mask)
		}
		g.Fields = append(g.Fields, HashField{Field: h.f, mask: mask})
	}
}

// parseFieldValue parses a value of field f (a mask, here) in the
// field's own units.
func parseFieldValue(f *field, text string) (u128, string) {
	switch f.kind {
	case kindMAC:
		v, ok := parseMAC(text)
		if !ok {
			return u128{}, "invalid Ethernet address " + text
		}
		return u128{lo: v}, ""
	case kindIPv4:
		v, ok := ipv4FromText(text)
		if !ok {
			return u128{}, "invalid IP address " + text
		}
		return u128{lo: uint64(v)}, ""
	case kindIPv6:
		a, ok := ipv6FromText(text)
		if !ok {
			return u128{}, "invalid IPv6 address " + text
		}
		var v u128
		for i := range 8 {
			v.hi = v.hi<<8 | uint64(a[i])
			v.lo = v.lo<<8 | uint64(a[8+i])
		}
		return v, ""
	case kindNum128:
		return parse128(text, f.name)
	}
	v, err := parseNum(text, 64)
	if err != nil {
		return u128{}, err.Error()
	}
	if v > ones(f.width()).lo {
		return u128{}, text + " does not fit in " + f.name
	}
	return u128{lo: v}, ""
}
