//go:build !race

package vport

const raceEnabled = false
