package mux_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/nanodems/connector/mux"
)

func TestStatusRoundTrip(t *testing.T) {
	long := strings.Repeat("r", mux.MaxReasonLen+10)
	for _, tc := range []struct {
		code   mux.Code
		reason string
		want   *mux.StatusError // nil for OK
	}{
		{mux.OK, "", nil},
		{mux.OK, "ignored", nil},
		{mux.Refused, "dial tcp 10.0.0.7:554: connection refused", &mux.StatusError{Code: mux.Refused, Reason: "dial tcp 10.0.0.7:554: connection refused"}},
		{mux.TimedOut, "", &mux.StatusError{Code: mux.TimedOut}},
		{mux.Unreachable, "no route", &mux.StatusError{Code: mux.Unreachable, Reason: "no route"}},
		{mux.NotAllowed, "", &mux.StatusError{Code: mux.NotAllowed}},
		{mux.BadRequest, "x", &mux.StatusError{Code: mux.BadRequest, Reason: "x"}},
		{mux.AgentError, long, &mux.StatusError{Code: mux.AgentError, Reason: long[:mux.MaxReasonLen]}},
	} {
		var b bytes.Buffer
		if err := mux.WriteStatus(&b, tc.code, tc.reason); err != nil {
			t.Fatal(err)
		}
		b.WriteString("payload")
		err := mux.ReadStatus(&b)
		var se *mux.StatusError
		errors.As(err, &se)
		if tc.want == nil && err != nil || tc.want != nil && (se == nil || *se != *tc.want) {
			t.Errorf("%v %q: ReadStatus = %v, want %v", tc.code, tc.reason, err, tc.want)
		}
		if b.String() != "payload" {
			t.Errorf("%v: ReadStatus left %q, want the payload", tc.code, b.String())
		}
	}
}

func TestReadStatusErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":            "",
		"short":            "\x01\x00",
		"version 0":        "\x00\x00\x00",
		"version 2":        "\x02\x01\x00",
		"unknown code":     "\x01\x07\x00",
		"code 255":         "\x01\xff\x02hi",
		"truncated reason": "\x01\x01\x05ref",
	} {
		err := mux.ReadStatus(strings.NewReader(in))
		var se *mux.StatusError
		if !errors.Is(err, mux.ErrBadStatus) || errors.As(err, &se) {
			t.Errorf("%s: ReadStatus = %v, want ErrBadStatus", name, err)
		}
	}
}

func TestStatusErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *mux.StatusError
		want string
	}{
		{&mux.StatusError{Code: mux.Refused}, "connection refused"},
		{&mux.StatusError{Code: mux.NotAllowed, Reason: "10.0.0.9:22"}, "target not in allowlist: 10.0.0.9:22"},
		{&mux.StatusError{Code: 9}, "code 9"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
