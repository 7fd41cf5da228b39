package builtins

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	sltime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// ParseDuration reads a duration as runbooks write it: a Go duration string
// ("90s", "1h30m"), days ("2d"), a number of seconds, or a time.duration.
func ParseDuration(v starlark.Value) (time.Duration, error) {
	switch x := v.(type) {
	case starlark.String:
		s := strings.TrimSpace(string(x))
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.ParseFloat(days, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return time.Duration(n * 24 * float64(time.Hour)), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want e.g. \"30s\", \"5m\", \"2h\", \"1d\")", s)
		}
		return d, nil
	case starlark.Int:
		n, ok := x.Int64()
		if !ok || n > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("duration %s seconds is too large", x)
		}
		return time.Duration(n) * time.Second, nil
	case starlark.Float:
		return time.Duration(float64(x) * float64(time.Second)), nil
	case sltime.Duration:
		return time.Duration(x), nil
	}
	return 0, fmt.Errorf("got %s for a duration, want a string like \"30s\", seconds, or a time.duration", v.Type())
}

// durationArg is an UnpackArgs target for an optional duration.
type durationArg struct {
	d   time.Duration
	set bool
}

func (a *durationArg) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	d, err := ParseDuration(v)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("negative duration %s", d)
	}
	a.d, a.set = d, true
	return nil
}
