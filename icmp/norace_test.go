//go:build !race

package icmp_test

const raceEnabled = false
