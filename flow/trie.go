package flow

import "sync/atomic"

// Prefix tries, as Open vSwitch's classifier keeps them (lib/classifier.c):
// one per table for each of nw_dst and nw_src, holding the prefix of every
// rule whose mask on that field is a CIDR prefix, and one per subtable for
// the transport ports, holding the rules' tp_src:tp_dst values. A lookup
// asks a trie how many leading bits of the packet's value it must consult
// to tell it apart from every longer prefix that does not match it, so that
// a rule with nw_dst=10.1.0.0/16 gives a packet to 172.16.0.1 the megaflow
// nw_dst=128.0.0.0/1 rather than nw_dst=172.16.0.0/16.
//
// The tries are binary and persistent: insert and remove copy the path
// they change and share the rest, so a published snapshot keeps the trie
// it was published with while the writer changes the next one.

// trieNode is a node of a prefix trie. The root stands for the empty
// prefix; a node at depth d for the d leading bits that lead to it.
type trieNode struct {
	child [2]*trieNode
	rules uint32 // rules whose prefix ends at this node
	// gen is the batch of changes that created the node (see
	// trieInsertIn); 0 for a node that is never changed in place.
	gen uint64
}

// trieGens hands out batch numbers for trieInsertIn.
var trieGens atomic.Uint64

// newTrieGen returns a batch number that no node has yet.
func newTrieGen() uint64 { return trieGens.Add(1) }

// trieBits is the width of the values the tries hold.
const trieBits = 32

// The fields with a prefix trie per table, in the order a lookup consults
// them (Open vSwitch's default prefixes: nw_dst, then nw_src).
const (
	trieNwDst = iota
	trieNwSrc
	numTries
)

// trieValue returns k's value of trie field j.
func trieValue(k *Key, j int) uint32 {
	if j == trieNwDst {
		return k.NwDst
	}
	return k.NwSrc
}

// setTriePrefix ORs the n leading bits of trie field j into wc.
func setTriePrefix(wc *Key, j int, n uint8) {
	m := prefixMask32(n)
	if j == trieNwDst {
		wc.NwDst |= m
	} else {
		wc.NwSrc |= m
	}
}

// triePrefixSet reports whether wc holds the n leading bits of trie field
// j.
func triePrefixSet(wc *Key, j int, n uint8) bool {
	m := prefixMask32(n)
	return trieValue(wc, j)&m == m
}

// prefixMask32 returns the mask of the n leading bits of 32.
func prefixMask32(n uint8) uint32 {
	if n == 0 {
		return 0
	}
	return ^uint32(0) << (32 - uint32(n))
}

// prefixLen32 returns the length of the CIDR prefix that mask m is, or 0
// when m is zero or not a prefix.
func prefixLen32(m uint32) uint8 {
	n := uint8(0)
	for n < 32 && m&(1<<(31-n)) != 0 {
		n++
	}
	if m != prefixMask32(n) {
		return 0
	}
	return n
}

// trieInsert returns a trie that holds n's prefixes and the plen leading
// bits of v once more. n is not changed.
func trieInsert(n *trieNode, v uint32, plen uint8) *trieNode {
	return n.insert(v, plen, 0, 0)
}

// trieInsertIn is trieInsert within batch gen (from newTrieGen): nodes
// that an insert of the same batch created are changed in place rather
// than copied, so that a batch of inserts into a trie that nobody reads
// until the batch ends (a table's writer between two publications, a
// subtable being built) copies each path once, not once per insert.
// Nodes of other batches are not changed.
func trieInsertIn(n *trieNode, v uint32, plen uint8, gen uint64) *trieNode {
	return n.insert(v, plen, 0, gen)
}

func (n *trieNode) insert(v uint32, plen, depth uint8, gen uint64) *trieNode {
	c := n
	if n == nil || gen == 0 || n.gen != gen {
		c = &trieNode{gen: gen}
		if n != nil {
			c.child, c.rules = n.child, n.rules
		}
	}
	if depth == plen {
		c.rules++
		return c
	}
	b := v >> (31 - depth) & 1
	c.child[b] = c.child[b].insert(v, plen, depth+1, gen)
	return c
}

// trieRemove returns a trie that holds n's prefixes with one fewer of the
// plen leading bits of v, which n must hold. n is not changed. It returns
// nil for a trie that holds nothing.
func trieRemove(n *trieNode, v uint32, plen uint8) *trieNode {
	return n.remove(v, plen, 0)
}

func (n *trieNode) remove(v uint32, plen, depth uint8) *trieNode {
	if n == nil {
		return nil // not held: nothing to remove
	}
	c := *n
	c.gen = 0 // a copy: a batch that created n does not own it
	if depth == plen {
		if c.rules > 0 {
			c.rules--
		}
	} else {
		b := v >> (31 - depth) & 1
		c.child[b] = c.child[b].remove(v, plen, depth+1)
	}
	if c.rules == 0 && c.child[0] == nil && c.child[1] == nil {
		return nil
	}
	return &c
}

// lookup walks the trie along v. It returns plens, with bit L-1 set for
// each prefix length L at which some rule's prefix equals v's, and
// maskbits, the number of v's leading bits that tell v apart from every
// prefix that does not match it: the length of the longest path v
// follows, plus the first bit where it leaves it when a longer prefix
// lies beyond that bit.
func (n *trieNode) lookup(v uint32) (maskbits uint8, plens uint32) {
	if n == nil {
		return 0, 0
	}
	for depth := uint8(0); ; {
		if depth == trieBits {
			return trieBits, plens
		}
		b := v >> (31 - depth) & 1
		next := n.child[b]
		if next == nil {
			if n.child[b^1] == nil {
				return depth, plens
			}
			return depth + 1, plens
		}
		n = next
		depth++
		if n.rules > 0 {
			plens |= 1 << (depth - 1)
		}
	}
}
