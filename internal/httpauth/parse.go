package httpauth

import (
	"fmt"
	"strings"
)

// Bounds on what ParseChallenges accepts. Real cameras send one to three
// challenges of under ten parameters in a few hundred bytes; the bounds
// keep a hostile or broken server from making the relay allocate much.
// Parsing is a single left-to-right pass, so work is linear in the input.
const (
	maxInput      = 16 << 10 // bytes over all header values
	maxChallenges = 32       // over all header values, unknown schemes included
	maxParams     = 32       // per challenge
)

// ParseChallenges parses WWW-Authenticate header values (RFC 7235 §4.1):
// each value is a comma-separated list of challenges, and one response may
// carry several values. A challenge is a scheme followed by either
// comma-separated auth-params (name=token or name="quoted string", the
// quoted string may hold commas and \-escaped characters) or a token68
// (e.g. "Negotiate YII..."), which is how a list can mix schemes:
//
//	Digest realm="a, b", nonce="x", qop="auth,auth-int", Basic realm="c"
//
// Only Basic and Digest challenges are returned; other schemes are parsed
// past and skipped. As a concession to old firmware, an unquoted value may
// also hold '/' and '=' (an unquoted base64 nonce).
//
// A value that breaks the grammar, a challenge that repeats a parameter and
// input beyond the package's bounds yield an error wrapping ErrMalformed.
// The returned slice then still holds the challenges the fault does not
// touch, so the caller may still answer those: the ones of the other
// values, and in the faulty value those complete before the fault (the
// next challenge had begun). The challenge in which the fault lies is
// dropped, since its missing part could have been, say, its algorithm; so
// is the rest of its value, which can no longer be split reliably. Past
// the challenge bound parsing stops. ParseChallenges never panics.
func ParseChallenges(headers []string) ([]Challenge, error) {
	total := 0
	for _, h := range headers {
		total += len(h)
	}
	if total > maxInput {
		return nil, fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrMalformed, total, maxInput)
	}
	var (
		out     []Challenge
		firstEr error
		count   int
	)
	for _, h := range headers {
		p := parser{s: h}
		for {
			raw, more, err := p.next()
			if err != nil {
				if firstEr == nil {
					firstEr = err
				}
				break // the rest of this value cannot be delimited
			}
			if !more {
				break
			}
			if count++; count > maxChallenges {
				return out, fmt.Errorf("%w: more than %d challenges", ErrMalformed, maxChallenges)
			}
			ch, ok, err := raw.challenge()
			if err != nil && firstEr == nil {
				firstEr = err
			}
			if ok {
				out = append(out, ch)
			}
		}
	}
	return out, firstEr
}

type param struct{ name, value string }

type rawChallenge struct {
	scheme  string
	params  []param
	token68 bool // the challenge had a token68 instead of parameters
}

// challenge converts a Basic or Digest challenge; ok is false for other
// schemes and, with err set, for a Basic or Digest challenge with a token68
// (neither scheme defines one: "Digest realm=" lost its value) or with a
// repeated parameter.
func (r rawChallenge) challenge() (Challenge, bool, error) {
	var ch Challenge
	switch {
	case strings.EqualFold(r.scheme, "Basic"):
		ch.Scheme = "Basic"
	case strings.EqualFold(r.scheme, "Digest"):
		ch.Scheme = "Digest"
	default:
		return ch, false, nil
	}
	if r.token68 {
		return ch, false, fmt.Errorf("%w: %s challenge with a token68 instead of parameters", ErrMalformed, ch.Scheme)
	}
	for i, p := range r.params {
		// RFC 7235 §2.1: each parameter name only once per challenge. Which
		// of two nonces the server meant is anybody's guess; drop it.
		for _, q := range r.params[:i] {
			if strings.EqualFold(p.name, q.name) {
				return ch, false, fmt.Errorf("%w: %s challenge repeats parameter %q", ErrMalformed, ch.Scheme, p.name)
			}
		}
		switch strings.ToLower(p.name) {
		case "realm":
			ch.Realm = p.value
		case "nonce":
			ch.Nonce = p.value
		case "opaque":
			ch.Opaque = p.value
		case "algorithm":
			ch.Algorithm = p.value
		case "qop":
			for _, q := range strings.Split(p.value, ",") {
				if q = strings.Trim(q, " \t"); q != "" {
					ch.QOP = append(ch.QOP, q)
				}
			}
		case "stale":
			ch.Stale = strings.EqualFold(p.value, "true")
		case "userhash":
			ch.Userhash = strings.EqualFold(p.value, "true")
		case "charset":
			ch.Charset = p.value
		}
	}
	return ch, true, nil
}

// parser walks one header value.
type parser struct {
	s string
	i int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d of %q", ErrMalformed, fmt.Sprintf(format, args...), p.i, clip(p.s))
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (p *parser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) atEnd() bool { return p.i >= len(p.s) }

// atDelim reports whether the parser is at the end or at a comma.
func (p *parser) atDelim() bool { return p.i >= len(p.s) || p.s[p.i] == ',' }

func (p *parser) scan(ok func(byte) bool) string {
	j := p.i
	for j < len(p.s) && ok(p.s[j]) {
		j++
	}
	t := p.s[p.i:j]
	p.i = j
	return t
}

// next parses the next challenge; more is false at the end of the value.
// On return the parser stands at the comma (or end) after the challenge.
func (p *parser) next() (r rawChallenge, more bool, err error) {
	// 1#element allows empty elements: ", , Basic".
	for !p.atEnd() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
	if p.atEnd() {
		return r, false, nil
	}
	if r.scheme = p.scan(isTchar); r.scheme == "" {
		return r, false, p.errorf("expected an auth-scheme")
	}
	if !p.atDelim() && p.s[p.i] != ' ' && p.s[p.i] != '\t' {
		return r, false, p.errorf("unexpected %q after scheme", p.s[p.i])
	}
	p.ows()
	if p.atDelim() {
		return r, true, nil // scheme without parameters
	}
	if p.token68() {
		r.token68 = true
		return r, true, nil
	}
	for {
		if len(r.params) == maxParams {
			return r, false, p.errorf("more than %d parameters", maxParams)
		}
		pr, err := p.param()
		if err != nil {
			return r, false, err
		}
		r.params = append(r.params, pr)
		p.ows()
		if p.atEnd() {
			return r, true, nil
		}
		if p.s[p.i] != ',' {
			return r, false, p.errorf("expected ',' after parameter %q", pr.name)
		}
		// Another parameter of this challenge, or the next challenge? A
		// parameter is "token BWS =", a challenge "token SP ..." or a lone
		// token; look past the comma(s) without consuming them.
		save := p.i
		for !p.atEnd() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
			p.i++
		}
		isParam := false
		if p.scan(isTchar) != "" {
			p.ows()
			isParam = !p.atEnd() && p.s[p.i] == '='
		}
		if !isParam {
			p.i = save
			return r, true, nil
		}
		p.i = save
		for p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',' {
			p.i++
		}
	}
}

// token68 consumes a token68 (RFC 7235 §2.1) if one stands here followed by
// the end of the challenge, and reports whether it did. "realm=x" is not a
// token68 (x follows the '='), "abc==" is.
func (p *parser) token68() bool {
	save := p.i
	if p.scan(isToken68) != "" {
		for !p.atEnd() && p.s[p.i] == '=' {
			p.i++
		}
		p.ows()
		if p.atDelim() {
			return true
		}
	}
	p.i = save
	return false
}

// param parses name BWS "=" BWS ( token / quoted-string ).
func (p *parser) param() (param, error) {
	var pr param
	if pr.name = p.scan(isTchar); pr.name == "" {
		return pr, p.errorf("expected a parameter name")
	}
	p.ows()
	if p.atEnd() || p.s[p.i] != '=' {
		return pr, p.errorf("expected '=' after %q", pr.name)
	}
	p.i++
	p.ows()
	if !p.atEnd() && p.s[p.i] == '"' {
		v, err := p.quoted()
		pr.value = v
		return pr, err
	}
	if pr.value = p.scan(isUnquoted); pr.value == "" {
		return pr, p.errorf("expected a value for %q", pr.name)
	}
	return pr, nil
}

// quoted parses a quoted-string starting at its opening quote and returns
// its content with quoted-pairs resolved. Control characters other than
// HTAB are refused, inside quoted-pairs too: values are echoed into the
// Authorization header, where CR or LF would start a new header line.
func (p *parser) quoted() (string, error) {
	start := p.i
	p.i++ // opening quote
	var b strings.Builder
	plain := true // no quoted-pair so far: the result is a substring
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if plain {
				return p.s[start+1 : p.i-1], nil
			}
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errorf("unterminated quoted-string")
			}
			if plain {
				b.WriteString(p.s[start+1 : p.i])
				plain = false
			}
			p.i++
			c = p.s[p.i]
		}
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return "", p.errorf("control character %q in quoted-string", c)
		}
		if !plain {
			b.WriteByte(c)
		}
		p.i++
	}
	p.i = start
	return "", p.errorf("unterminated quoted-string")
}

// isTchar: RFC 9110 §5.6.2 token characters.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isToken68: the token68 characters before its trailing '='s.
func isToken68(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

// isUnquoted: token characters, plus '/' and '=' for the unquoted base64
// nonces of some firmware.
func isUnquoted(c byte) bool { return isTchar(c) || c == '/' || c == '=' }
