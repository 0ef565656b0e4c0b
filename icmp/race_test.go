//go:build race

package icmp_test

const raceEnabled = true
