package scaffold

import (
	"embed"
	"text/template"
)

//go:embed templates
var templates embed.FS

var (
	runbookTmpl = template.Must(template.ParseFS(templates, "templates/runbook.star.tmpl"))
	testTmpl    = template.Must(template.ParseFS(templates, "templates/test.star.tmpl"))
)
