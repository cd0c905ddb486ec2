package ids

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"c1", true},
		{"collector-1", true},
		{"host.example.com:9100", true},
		{"user@host", true},
		{"a_b", true},
		{"0f3b7c2e-8d1a-4c5e-9b6f-2a7d3e4c5b6a", true},
		{"x", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"a b", false},
		{"a/b", false},
		{"a'b", false},
		{"a\"b", false},
		{"a%2Fb", false},
		{"a?b", false},
		{"a\nb", false},
		{"é", false},
		{"a+b", false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		if got := Valid(tt.id); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
