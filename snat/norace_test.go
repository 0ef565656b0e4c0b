//go:build !race

package snat

const raceEnabled = false
