//go:build race

package snat

const raceEnabled = true
