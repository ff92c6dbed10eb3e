package license

import (
	"errors"
	"testing"
)

const guid = "0f8fad5b-d9cb-469f-a165-70867728950e"

func TestFromSubprotocols(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   Credential
		ok     bool
		err    bool
	}{
		{"one subprotocol", []string{"license." + guid + ".user.op-17"}, Credential{GUID: guid, UserID: "op-17", Subprotocol: "license." + guid + ".user.op-17"}, true, false},
		{"pair in one header", []string{"license." + guid + ", user.u.1"}, Credential{GUID: guid, UserID: "u.1", Subprotocol: "license." + guid}, true, false},
		{"pair in two headers, user first", []string{"user.u1", "license." + guid}, Credential{GUID: guid, UserID: "u1", Subprotocol: "license." + guid}, true, false},
		{"upper-case GUID", []string{"license.0F8FAD5B-D9CB-469F-A165-70867728950E"}, Credential{GUID: guid, Subprotocol: "license.0F8FAD5B-D9CB-469F-A165-70867728950E"}, true, false},
		{"other subprotocols", []string{"binary, chat"}, Credential{}, false, false},
		{"none", nil, Credential{}, false, false},
		{"two licenses", []string{"license." + guid, "license." + guid}, Credential{}, true, true},
		{"short GUID", []string{"license.0f8fad5b"}, Credential{}, true, true},
		{"not hex", []string{"license.0f8fad5b-d9cb-469f-a165-70867728950g"}, Credential{}, true, true},
		{"junk after GUID", []string{"license." + guid + "x"}, Credential{}, true, true},
		{"empty user", []string{"license." + guid + ".user."}, Credential{}, true, true},
		{"user twice", []string{"license." + guid + ".user.a", "user.b"}, Credential{}, true, true},
		{"user with a control character", []string{"license." + guid + ".user.a\x00b"}, Credential{}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := FromSubprotocols(tc.values)
			if (err != nil) != tc.err || ok != tc.ok || got != tc.want {
				t.Fatalf("got %+v %v %v; want %+v %v error %v", got, ok, err, tc.want, tc.ok, tc.err)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestFromHeaders(t *testing.T) {
	c, err := FromHeaders(" "+guid+" ", "ops@partner")
	if err == nil {
		t.Fatalf("user id with '@' accepted: %+v", c)
	}
	c, err = FromHeaders(guid, "")
	if err != nil || c != (Credential{GUID: guid}) {
		t.Fatalf("got %+v %v", c, err)
	}
	c, err = FromHeaders(guid, "operator-7")
	if err != nil || c != (Credential{GUID: guid, UserID: "operator-7"}) {
		t.Fatalf("got %+v %v", c, err)
	}
	if _, err := FromHeaders("not-a-guid", ""); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed GUID: %v", err)
	}
}

func TestNew(t *testing.T) {
	a, b := New(), New()
	if a == b {
		t.Fatal("two licenses alike")
	}
	if g, err := ParseGUID(a); err != nil || g != a {
		t.Fatalf("New() = %q does not parse back: %v", a, err)
	}
}
