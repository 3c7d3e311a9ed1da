package xplant

// Sum exports sum to the external tests.
var Sum = sum
