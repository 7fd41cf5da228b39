package runbooktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	sbruntime "github.com/starbook/starbook/runtime"
)

// DryRun runs b once, offline, in an agreeable world: m's mocks (nil for
// none) answer first, then every HTTP request gets 200 {}, every approval
// is approved, every signal times out, sleeps pass at once. Nothing real is
// touched and nothing is stored.
func DryRun(ctx context.Context, b *sbruntime.Bundle, input json.RawMessage, m *Mocks, limits sbruntime.Limits) (*Result, error) {
	if m == nil {
		m = NewMocks()
	}
	m.DryRun = true
	return m.Execute(ctx, b, input, limits)
}

// WritePlan prints the steps an offline run took: position, kind, name and
// arguments, the effects under each step (defaults marked), then how it
// ended.
func WritePlan(w io.Writer, b *sbruntime.Bundle, res *Result) error {
	fmt.Fprintf(w, "dry run of %s@%s: every effect mocked, nothing stored\n\n", b.Name, b.Version)
	type row struct {
		cells   [3]string
		args    string
		effects []string
	}
	rows := []row{{cells: [3]string{"POSITION", "KIND", "NAME"}, args: "ARGS"}}
	for _, s := range res.Steps {
		depth := strings.Count(s.Position, "/") / 2
		name := s.Name
		if name == "" {
			name = "-"
		}
		args := s.Summary
		switch {
		case s.Kind == sbruntime.KindApproval:
			args = approvalNote(s.Event)
		case s.Kind == sbruntime.KindSignal && strings.Contains(string(s.Result), `"timed_out":true`):
			args += " (timed out)"
		case s.Error != "":
			args += "  !! " + firstLine(s.Error)
		}
		r := row{cells: [3]string{strings.Repeat("  ", depth) + s.Position, s.Kind, oneLine(name, 40)}, args: args}
		for _, c := range s.Effects {
			note := ""
			if !c.Mocked {
				note = " (default)"
			}
			r.effects = append(r.effects, strings.Repeat("  ", depth)+"  -> "+c.Summary()+note)
		}
		rows = append(rows, r)
	}
	var width [3]int
	for _, r := range rows {
		for i, c := range r.cells {
			width[i] = max(width[i], len(c))
		}
	}
	for _, r := range rows {
		line := fmt.Sprintf("%-*s  %-*s  %-*s  %s", width[0], r.cells[0], width[1], r.cells[1], width[2], r.cells[2], r.args)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		for _, e := range r.effects {
			fmt.Fprintln(w, e)
		}
	}
	e := res.Execution
	fmt.Fprintln(w)
	switch {
	case e.Status == sbruntime.StatusCompleted:
		_, err := fmt.Fprintf(w, "completed: %s\n", e.Result)
		return err
	case e.Error != "":
		_, err := fmt.Fprintf(w, "%s:\n%s\n", e.Status, indentBy(e.Error, "  "))
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", e.Status)
	return err
}

func approvalNote(ev *sbruntime.Event) string {
	var r sbruntime.ApprovalResult
	if ev.Error != "" {
		return "!! " + firstLine(ev.Error)
	}
	if err := json.Unmarshal(ev.Result, &r); err != nil {
		return ""
	}
	if r.Decision == sbruntime.DecisionTimeout {
		return "timed out"
	}
	verb := "approved"
	if r.Decision == sbruntime.DecisionReject {
		verb = "rejected"
	}
	return verb + " by " + strings.Join(r.By, ", ")
}

// firstLine is the line of an error worth one table cell: the first, or
// with a backtrace the message after it.
func firstLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[0]
	if before, _, ok := strings.Cut(l, "Traceback (most recent call last):"); ok {
		l = strings.TrimSpace(before + " " + strings.TrimSpace(lines[len(lines)-1]))
	}
	return oneLine(l, 100)
}
