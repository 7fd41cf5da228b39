package runtime

import (
	"context"
	"fmt"
	"log/slog"
)

// LogHandler returns a handler that writes records to h with every secret s
// knows scrubbed from the message and attribute values (strings, errors and
// other values as they print). It is the last line of defence: what a run
// logs is scrubbed before it gets here.
func (s *Scrubber) LogHandler(h slog.Handler) slog.Handler {
	return &scrubHandler{s: s, h: h}
}

type scrubHandler struct {
	s *Scrubber
	h slog.Handler
}

func (sh *scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return sh.h.Enabled(ctx, l) }

func (sh *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	if sh.s.Empty() {
		return sh.h.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, sh.s.Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(sh.attr(a))
		return true
	})
	return sh.h.Handle(ctx, out)
}

func (sh *scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		scrubbed[i] = sh.attr(a)
	}
	return &scrubHandler{s: sh.s, h: sh.h.WithAttrs(scrubbed)}
}

func (sh *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{s: sh.s, h: sh.h.WithGroup(name)}
}

func (sh *scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	key := sh.s.Scrub(a.Key)
	switch v.Kind() {
	case slog.KindString:
		return slog.String(key, sh.s.Scrub(v.String()))
	case slog.KindGroup:
		group := v.Group()
		out := make([]any, len(group))
		for i, g := range group {
			out[i] = sh.attr(g)
		}
		return slog.Group(key, out...)
	case slog.KindAny:
		var text string
		if err, ok := v.Any().(error); ok {
			text = err.Error()
		} else {
			text = fmt.Sprint(v.Any())
		}
		if sh.s.Contains(text) {
			return slog.String(key, sh.s.Scrub(text))
		}
	}
	return slog.Attr{Key: key, Value: v}
}
