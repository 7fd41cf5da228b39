package runtime

import "strings"

// Description is what the runbook says about itself: the comment that
// opens its main file, without the "#" marks, its paragraphs kept (an empty
// comment line is a blank line). Blank lines and a "#!" line before it are
// skipped; the first line that is not a comment ends it. "" when the main
// file opens with code.
func (b *Bundle) Description() string {
	var lines []string
	started := false
	for i, line := range strings.Split(b.Files[b.Main], "\n") {
		line = strings.TrimSpace(line)
		switch {
		case i == 0 && strings.HasPrefix(line, "#!"):
			continue
		case line == "" && !started:
			continue
		case !strings.HasPrefix(line, "#"):
			return strings.TrimSpace(strings.Join(lines, "\n"))
		}
		started = true
		text := strings.TrimPrefix(line, "#")
		lines = append(lines, strings.TrimPrefix(text, " "))
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
