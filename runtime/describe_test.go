package runtime_test

import (
	"testing"

	sbruntime "github.com/starbook/starbook/runtime"
)

func TestBundleDescription(t *testing.T) {
	for _, tt := range []struct {
		name, src, want string
	}{
		{"the opening comment", "# Restart a pod.\n# Then watch it.\n\ndef main(event):\n    pass\n",
			"Restart a pod.\nThen watch it."},
		{"paragraphs and indented examples kept", "# One.\n#\n#   starbook run x\n#\n# Two.\ntrigger.cron(\"@hourly\")\n# not this\n",
			"One.\n\n  starbook run x\n\nTwo."},
		{"blank lines and #! first", "#!/usr/bin/env starbook\n\n\n# Hello.\ndef main(event):\n    pass\n", "Hello."},
		{"code first", "def main(event):\n    # inside\n    pass\n", ""},
		{"only a comment", "# Just this.", "Just this."},
		{"no hash space", "#tight\n##double\n", "tight\n#double"},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &sbruntime.Bundle{Main: "r.star", Files: map[string]string{"r.star": tt.src, "lib.star": "# Not the main file.\n"}}
			if got := b.Description(); got != tt.want {
				t.Errorf("Description() = %q, want %q", got, tt.want)
			}
		})
	}
}
