package ctl

import "errors"

// ErrImmutable is wrapped by a Backend.ApplyConfig error about a field that
// cannot change while edge runs (interfaces, queues, ...). The server
// answers such an error with FAILED_PRECONDITION and any other
// ApplyConfig error with INVALID_ARGUMENT; the error's text (which names
// the field) is the status message either way.
//
//	return ctl.ApplyResult{}, fmt.Errorf("interfaces.inside.name: %w", ctl.ErrImmutable)
var ErrImmutable = errors.New("cannot change while edge runs; restart edge")
