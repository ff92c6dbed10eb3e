package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nanodems/connector/relay/store"
)

// HTTPStatus maps an error of Dial, authentication or the store to the
// HTTP status an operator should see.
func HTTPStatus(err error) int {
	var tl *tryLaterError
	switch {
	case errors.As(err, &tl):
		return tl.code
	case errors.Is(err, errNoCredential), errors.Is(err, errBadCredential):
		return http.StatusUnauthorized
	case errors.Is(err, ErrOtherTenant), errors.Is(err, ErrNotAllowed), errors.Is(err, errForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrUnknownHandle), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrAgentOffline):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrUnreachable):
		return http.StatusBadGateway
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case store.Unavailable(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errDatabaseAway is the answer's reason while the store cannot be
// reached (store.Unavailable): 503, for the client to try again.
const errDatabaseAway = "database unavailable; try again shortly"

var (
	errForbidden  = errors.New("forbidden")
	errBadRequest = errors.New("bad request")
)

// tryLaterError refuses a request the relay will take later (429 after too
// many failed sign-ins, 503 while every core is checking passwords); its
// answer carries Retry-After.
type tryLaterError struct {
	code  int
	after time.Duration
	msg   string
}

func (e *tryLaterError) Error() string { return e.msg }

// setRetryAfter adds Retry-After to the answer of a *tryLaterError.
func setRetryAfter(w http.ResponseWriter, err error) {
	var tl *tryLaterError
	if errors.As(err, &tl) {
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(tl.after)))
	}
}

// retrySeconds is d in whole seconds, rounded up, at least 1: a client
// that waits as long as Retry-After says is not refused again.
func retrySeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// lookupError is a store miss or clash told in the API's words: "site
// site_x not found", not the store's chain of internals. It still wraps
// the store error for errors.Is and the log.
type lookupError struct {
	msg string
	err error
}

func (e *lookupError) Error() string { return e.msg }
func (e *lookupError) Unwrap() error { return e.err }

// lookup words a store error about what (e.g. "site site_x").
func lookup(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &lookupError{what + " not found", err}
	case errors.Is(err, store.ErrConflict):
		return &lookupError{what + " already exists", err}
	}
	return err
}

// writeError answers with {"error": "<one line>"} and the mapped status.
// Internal errors are logged in full and answered without detail.
func (s *base) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := HTTPStatus(err)
	msg := err.Error()
	if code == http.StatusServiceUnavailable && store.Unavailable(err) {
		// The driver's words name the database's address and user.
		s.log.Warn("request failed: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = errDatabaseAway
	}
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nanodems"`)
	}
	setRetryAfter(w, err)
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readJSON decodes a request body of at most 1 MiB, refusing unknown
// fields so a typo in a field name is an error, not a silent default.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", errBadRequest, err)
	}
	return nil
}
