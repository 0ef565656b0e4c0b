package header_test

import (
	"testing"

	"github.com/edgegw/edge/header"
)

func TestParseTCPOptions(t *testing.T) {
	none := header.TCPSynOptions{WindowScale: -1}
	tests := []struct {
		name string
		opts []byte
		want header.TCPSynOptions
		ok   bool
	}{
		{"empty", nil, none, true},
		{"linux syn", []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7},
			header.TCPSynOptions{MSS: 1460, WindowScale: 7, SACKPermitted: true, Timestamps: true}, true},
		{"nops", []byte{1, 1, 1, 1}, none, true},
		{"eol stops", []byte{2, 4, 0x02, 0x18, 0, 3, 3, 7}, header.TCPSynOptions{MSS: 536, WindowScale: -1}, true},
		{"eol then garbage", []byte{0, 0xff}, none, true},
		{"wscale 0", []byte{3, 3, 0, 0}, header.TCPSynOptions{WindowScale: 0}, true},
		{"wscale 14", []byte{3, 3, 14}, header.TCPSynOptions{WindowScale: 14}, true},
		{"wscale capped", []byte{3, 3, 15}, header.TCPSynOptions{WindowScale: 14}, true},
		{"wscale 255 capped", []byte{3, 3, 255}, header.TCPSynOptions{WindowScale: 14}, true},
		{"mss wrong len ignored", []byte{2, 3, 5, 1, 1}, none, true},
		{"wscale wrong len ignored", []byte{3, 4, 5, 6}, none, true},
		{"sackperm wrong len ignored", []byte{4, 3, 0}, none, true},
		{"ts wrong len ignored", []byte{8, 6, 0, 0, 0, 0}, none, true},
		{"unknown option skipped", []byte{30, 6, 1, 2, 3, 4, 2, 4, 0, 100}, header.TCPSynOptions{MSS: 100, WindowScale: -1}, true},
		{"sack blocks", []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2}, none, true},
		{"duplicate last wins", []byte{2, 4, 0, 1, 2, 4, 0, 2}, header.TCPSynOptions{MSS: 2, WindowScale: -1}, true},
		{"len 0", []byte{2, 0, 0, 0}, none, false},
		{"len 1", []byte{30, 1, 0, 0}, none, false},
		{"missing len", []byte{1, 2}, none, false},
		{"overrun", []byte{2, 4, 5}, none, false},
		{"overrun after good", []byte{3, 3, 7, 8, 10, 0}, none, false},
		{"overrun 255", append([]byte{30, 255}, make([]byte, 38)...), none, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := header.ParseTCPOptions(tc.opts)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseTCPOptions(% x) = %+v, %v; want %+v, %v", tc.opts, got, ok, tc.want, tc.ok)
			}
		})
	}
}
