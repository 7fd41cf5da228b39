package quota

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: an error
	}{
		{"64MB", 64_000_000},
		{"64MiB", 64 << 20},
		{"8GiB", 8 << 30},
		{"8gib", 8 << 30},
		{"2 GB", 2_000_000_000},
		{"1.5GiB", 3 << 29},
		{"1048576", 1 << 20},
		{"1MiB", 1 << 20},
		{"1MB", 0},    // under MinQuota
		{"512KiB", 0}, // under MinQuota
		{"0", 0},      // under MinQuota
		{"", 0},       // nothing
		{"-1GiB", 0},  // negative
		{"64 parsecs", 0},
		{"GiB", 0},
		{"2PiB", 0}, // too large
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	if got := FormatSize(DefaultQuota); got != "2.0 GiB" {
		t.Fatalf("FormatSize(2 GiB) = %q", got)
	}
}
