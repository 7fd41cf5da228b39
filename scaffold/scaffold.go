package scaffold

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"go.starlark.net/starlark"

	sbruntime "github.com/starbook/starbook/runtime"
	"github.com/starbook/starbook/starfmt"
	"github.com/starbook/starbook/triggers"
)

// Label is one exact label match of an alert trigger.
type Label struct{ Name, Value string }

// ParseLabel parses "LABEL=VALUE" as --alert gives it: a Prometheus label
// name and a non-empty value.
func ParseLabel(s string) (Label, error) {
	name, value, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return Label{}, fmt.Errorf("alert label %q: want LABEL=VALUE", s)
	case !labelName.MatchString(name):
		return Label{}, fmt.Errorf("alert label %q: %q is not a label name (letters, digits and '_', not starting with a digit)", s, name)
	case value == "":
		return Label{}, fmt.Errorf("alert label %q: give a value (LABEL=VALUE)", s)
	}
	return Label{name, value}, nil
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Options say what runbook to scaffold and what starts it; with no trigger
// it is started by hand (starbook run) only.
type Options struct {
	Name    string
	Alert   []Label // trigger.alert with these labels
	Cron    string  // trigger.cron spec
	Webhook string  // trigger.webhook name
}

// File is one generated file.
type File struct {
	Name string // NAME.star, NAME_test.star or NAME.schema.json
	Data []byte
}

// Generate returns the files of a new runbook, in the order above, or why
// the options are refused.
func Generate(o Options) ([]File, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	d := o.data()
	var files []File
	for _, f := range []struct {
		name string
		tmpl *template.Template
	}{{o.Name + ".star", runbookTmpl}, {o.Name + "_test.star", testTmpl}} {
		var b bytes.Buffer
		if err := f.tmpl.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("generate %s: %w", f.name, err)
		}
		src, err := starfmt.Format(f.name, b.Bytes())
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", f.name, err)
		}
		files = append(files, File{f.name, src})
	}
	files = append(files, File{o.Name + ".schema.json", o.schema()})
	// The runbook first, then its schema and test, as ls shows them.
	files[1], files[2] = files[2], files[1]
	return files, nil
}

// Write writes files into dir (made if missing). Unless force, it writes
// nothing when one of them exists already.
func Write(dir string, files []File, force bool) error {
	if !force {
		var exist []string
		for _, f := range files {
			if _, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil {
				exist = append(exist, filepath.Join(dir, f.Name))
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("%s: exists already (--force overwrites)", strings.Join(exist, ", "))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (o Options) validate() error {
	if !sbruntime.ValidRunbookName(o.Name) {
		return fmt.Errorf("runbook name %q: want 1 to 100 lower-case letters, digits, '-' or '_', starting with a letter or digit", o.Name)
	}
	if strings.HasSuffix(o.Name, "_test") {
		return fmt.Errorf("runbook name %q: NAME_test.star is a test file, not a runbook", o.Name)
	}
	if len(o.Alert) > 0 {
		labels := map[string]string{}
		for _, l := range o.Alert {
			if _, dup := labels[l.Name]; dup {
				return fmt.Errorf("alert label %s given twice", l.Name)
			}
			labels[l.Name] = l.Value
		}
		if _, err := triggers.NewAlert(labels, nil); err != nil {
			return fmt.Errorf("--alert: %w", err)
		}
	}
	if o.Cron != "" {
		if _, err := triggers.NewCron(o.Cron, "", "", 0); err != nil {
			return fmt.Errorf("--cron: %w", err)
		}
	}
	if o.Webhook != "" {
		if _, err := triggers.NewWebhook(o.Webhook, o.secretEnv(), "", 0); err != nil {
			return fmt.Errorf("--webhook: %w", err)
		}
	}
	return nil
}

// secretEnv names the environment variable of the webhook's HMAC secret.
func (o Options) secretEnv() string {
	return strings.ToUpper(strings.ReplaceAll(o.Name, "-", "_")) + "_HOOK_SECRET"
}

// data is what the templates see; strings are Starlark literals already.
type data struct {
	Name, NameLit       string
	AlertArgs, AlertSel string // trigger.alert's arguments; {a="b"} for the comment
	AlertEvent          string // a test's alert event literal
	Cron, CronLit       string
	Webhook, WebhookLit string
	SecretEnv           string
	Approval            bool
	Header              string // the opening comment
}

// reserved are trigger.alert's own keyword arguments: labels so named are
// given as matchers.
var reserved = map[string]bool{"matchers": true, "group_by": true, "coalesce": true, "max_concurrent": true, "rate": true, "on_excess": true}

func (o Options) data() data {
	d := data{Name: o.Name, NameLit: lit(o.Name), Cron: o.Cron, CronLit: lit(o.Cron),
		Webhook: o.Webhook, WebhookLit: lit(o.Webhook), SecretEnv: o.secretEnv()}
	var args, matchers, sel, event []string
	for _, l := range o.Alert {
		if reserved[l.Name] || isKeyword(l.Name) {
			matchers = append(matchers, lit(fmt.Sprintf("%s=%q", l.Name, l.Value)))
		} else {
			args = append(args, l.Name+" = "+lit(l.Value))
		}
		sel = append(sel, fmt.Sprintf("%s=%q", l.Name, l.Value))
		event = append(event, lit(l.Name)+": "+lit(l.Value))
	}
	if len(matchers) > 0 {
		args = append(args, "matchers = ["+strings.Join(matchers, ", ")+"]")
	}
	d.AlertArgs = strings.Join(args, ", ")
	if len(sel) > 0 {
		d.AlertSel = "{" + strings.Join(sel, ", ") + "}"
		event = append(event, `"instance": "web-2"`)
		d.AlertEvent = "{" + strings.Join(event, ", ") + "}"
	}
	// An alert pages a person: ask them. A schedule runs unattended, so a
	// runbook with a cron trigger does not wait for anyone.
	d.Approval = len(o.Alert) > 0 && o.Cron == ""
	var starts []string
	if d.AlertSel != "" {
		starts = append(starts, "the alert "+d.AlertSel)
	}
	if o.Cron != "" {
		starts = append(starts, fmt.Sprintf("on the schedule %q (UTC)", o.Cron))
	}
	if o.Webhook != "" {
		starts = append(starts, fmt.Sprintf("a POST to /hooks/%s signed with the nodes' %s", o.Webhook, d.SecretEnv))
	}
	starts = append(starts, "by hand")
	by := starts[0]
	if len(starts) > 1 {
		by = strings.Join(starts[:len(starts)-1], ", ") + " or " + starts[len(starts)-1]
	}
	d.Header = comment(o.Name+": TODO say in a sentence or two what this runbook fixes, and how.") + "\n#\n" +
		comment("Started by "+by+":") + "\n#\n" +
		"#   starbook run " + o.Name + " --input '{\"target\": \"web-1\"}'\n#\n" +
		comment("Its input is declared in "+o.Name+".schema.json; "+o.Name+"_test.star tests it offline (starbook test), and starbook check reads all three.")
	return d
}

// comment is text as "# " lines of at most 76 columns where its words allow.
func comment(text string) string {
	var lines []string
	line := "#"
	for _, w := range strings.Fields(text) {
		if len(line) > 1 && len(line)+1+len(w) > 76 {
			lines = append(lines, line)
			line = "#"
		}
		line += " " + w
	}
	return strings.Join(append(lines, line), "\n")
}

// lit is s as a Starlark string literal.
func lit(s string) string { return starlark.String(s).String() }

func isKeyword(s string) bool {
	switch s {
	case "and", "break", "continue", "def", "elif", "else", "for", "if", "in", "lambda", "load",
		"not", "or", "pass", "return", "while", "as", "assert", "async", "await", "class", "del",
		"except", "finally", "from", "global", "import", "is", "nonlocal", "raise", "try", "with", "yield":
		return true
	}
	return false
}

// schema is NAME.schema.json. It lists what main reads and leaves other
// properties free: an alert or a webhook body brings more than main reads.
func (o Options) schema() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{
  "title": %s,
  "description": %s,
  "type": ["object", "null"],
  "properties": {
    "target": {
      "title": "Target",
      "description": "What to act on (a host, a service); default: all.",
      "type": "string",
      "minLength": 1
    }`, jsonString(o.Name), jsonString("The input of "+o.Name+".star: what starbook run --input, a webhook body or an alert gives main(event)."))
	if len(o.Alert) > 0 {
		b.WriteString(`,
    "labels": {
      "title": "Alert labels",
      "description": "The labels of the alert that started the run; instance names the target.",
      "type": "object",
      "additionalProperties": {"type": "string"}
    }`)
	}
	b.WriteString("\n  }\n}\n")
	return b.Bytes()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
