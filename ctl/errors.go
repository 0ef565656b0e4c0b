package ctl

import "errors"

// ErrImmutable is wrapped by a Backend.ApplyConfig error about a field that
// cannot change while edge runs (interfaces, queues, ...). The server
// answers such an error with FAILED_PRECONDITION and any other
// ApplyConfig error with INVALID_ARGUMENT (but see ErrInternal and
// ErrStopping); the error's text (which names the field) is the status
// message either way.
//
//	return ctl.ApplyResult{}, fmt.Errorf("interfaces.inside.name: %w", ctl.ErrImmutable)
var ErrImmutable = errors.New("cannot change while edge runs; restart edge")

// ErrInternal is wrapped by a Backend error that is not the caller's
// fault: a valid configuration the data plane failed to put in force (a
// BPF map update that failed, ...). The server answers it with INTERNAL,
// the error's text as the message.
var ErrInternal = errors.New("internal error")

// ErrStopping is returned by a Backend that is closing (EngineBackend.Close).
// The server answers it with UNAVAILABLE.
var ErrStopping = errors.New("edge is stopping")

// wrapped is an error that is both err (its text) and kind.
type wrapped struct{ err, kind error }

func (e *wrapped) Error() string   { return e.err.Error() }
func (e *wrapped) Unwrap() []error { return []error{e.err, e.kind} }

// Internal wraps err with ErrInternal, keeping its text.
func Internal(err error) error {
	if err == nil {
		return nil
	}
	return &wrapped{err, ErrInternal}
}
