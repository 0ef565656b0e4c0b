package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
)

// The subset of STUN (RFC 5389) a hairpin probe needs: a Binding request
// without attributes, and the mapped address of its success response.

const (
	stunHeaderLen    = 20
	stunMagicCookie  = 0x2112A442
	stunBindingReq   = 0x0001
	stunBindingOK    = 0x0101
	stunBindingError = 0x0111

	attrMappedAddress    = 0x0001
	attrXorMappedAddress = 0x0020

	familyIPv4 = 0x01
	familyIPv6 = 0x02
)

// txID is a STUN transaction ID.
type txID [12]byte

func newTxID() txID {
	var id txID
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return id
}

// bindingRequest is a Binding request with transaction ID id and no
// attributes.
func bindingRequest(id txID) []byte {
	b := make([]byte, stunHeaderLen)
	binary.BigEndian.PutUint16(b[0:], stunBindingReq)
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint32(b[4:], stunMagicCookie)
	copy(b[8:], id[:])
	return b
}

var (
	errNotSTUN     = errors.New("not a STUN message")
	errOtherTx     = errors.New("STUN message of another transaction")
	errErrorReply  = errors.New("STUN Binding error response")
	errNotBinding  = errors.New("not a Binding success response")
	errNoMapped    = errors.New("Binding response without a (XOR-)MAPPED-ADDRESS")
	errBadAttr     = errors.New("malformed STUN attribute")
	errBadFamily   = errors.New("unknown address family in a STUN address attribute")
	errBadAttrsLen = errors.New("STUN message length does not match the datagram")
)

// isSTUN reports whether b has a STUN header with the magic cookie.
func isSTUN(b []byte) bool {
	return len(b) >= stunHeaderLen && b[0]&0xc0 == 0 && binary.BigEndian.Uint32(b[4:]) == stunMagicCookie
}

// parseBindingResponse returns the mapped address of a Binding success
// response to transaction id: XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS when
// the server sent only that.
func parseBindingResponse(b []byte, id txID) (netip.AddrPort, error) {
	if !isSTUN(b) {
		return netip.AddrPort{}, errNotSTUN
	}
	if txID(b[8:20]) != id {
		return netip.AddrPort{}, errOtherTx
	}
	switch binary.BigEndian.Uint16(b[0:]) {
	case stunBindingOK:
	case stunBindingError:
		return netip.AddrPort{}, errErrorReply
	default:
		return netip.AddrPort{}, errNotBinding
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n%4 != 0 || stunHeaderLen+n > len(b) {
		return netip.AddrPort{}, errBadAttrsLen
	}
	attrs := b[stunHeaderLen : stunHeaderLen+n]
	var mapped netip.AddrPort
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return netip.AddrPort{}, errBadAttr
		}
		typ := binary.BigEndian.Uint16(attrs[0:])
		l := int(binary.BigEndian.Uint16(attrs[2:]))
		padded := (l + 3) &^ 3
		if 4+padded > len(attrs) {
			return netip.AddrPort{}, errBadAttr
		}
		v := attrs[4 : 4+l]
		switch typ {
		case attrXorMappedAddress:
			return parseAddress(v, true, id)
		case attrMappedAddress:
			a, err := parseAddress(v, false, id)
			if err != nil {
				return netip.AddrPort{}, err
			}
			mapped = a
		}
		attrs = attrs[4+padded:]
	}
	if mapped.IsValid() {
		return mapped, nil
	}
	return netip.AddrPort{}, errNoMapped
}

// parseAddress decodes a (XOR-)MAPPED-ADDRESS value.
func parseAddress(v []byte, xor bool, id txID) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, errBadAttr
	}
	port := binary.BigEndian.Uint16(v[2:])
	var key [16]byte // the magic cookie, then the transaction ID (RFC 5389 15.2)
	binary.BigEndian.PutUint32(key[:], stunMagicCookie)
	copy(key[4:], id[:])
	if xor {
		port ^= stunMagicCookie >> 16
	}
	var ip []byte
	switch v[1] {
	case familyIPv4:
		ip = v[4:]
		if len(ip) != 4 {
			return netip.AddrPort{}, errBadAttr
		}
	case familyIPv6:
		ip = v[4:]
		if len(ip) != 16 {
			return netip.AddrPort{}, errBadAttr
		}
	default:
		return netip.AddrPort{}, errBadFamily
	}
	var a [16]byte
	copy(a[:], ip)
	if xor {
		for i := range ip {
			a[i] ^= key[i]
		}
	}
	if len(ip) == 4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a), port), nil
}

// bindingSuccess is a Binding success response to transaction id carrying
// XOR-MAPPED-ADDRESS mapped (what a STUN server sends; the tests' server).
func bindingSuccess(id txID, mapped netip.AddrPort) []byte {
	ip := mapped.Addr().Unmap()
	fam, n := byte(familyIPv4), 4
	if ip.Is6() {
		fam, n = familyIPv6, 16
	}
	b := make([]byte, stunHeaderLen+4+4+n)
	binary.BigEndian.PutUint16(b[0:], stunBindingOK)
	binary.BigEndian.PutUint16(b[2:], uint16(4+4+n))
	binary.BigEndian.PutUint32(b[4:], stunMagicCookie)
	copy(b[8:], id[:])
	a := b[stunHeaderLen:]
	binary.BigEndian.PutUint16(a[0:], attrXorMappedAddress)
	binary.BigEndian.PutUint16(a[2:], uint16(4+n))
	a[5] = fam
	binary.BigEndian.PutUint16(a[6:], mapped.Port()^stunMagicCookie>>16)
	var key [16]byte
	binary.BigEndian.PutUint32(key[:], stunMagicCookie)
	copy(key[4:], id[:])
	raw := ip.AsSlice()
	for i := range raw {
		a[8+i] = raw[i] ^ key[i]
	}
	return b
}
