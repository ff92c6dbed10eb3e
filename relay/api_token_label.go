package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
)

// maxTokenLabel bounds an API token's label, in bytes.
const maxTokenLabel = 200

// tokenLabel reads the optional body of POST /api/users/{userId}/tokens,
// {"label": "…"}: the owner's name for the token, shown in its list. No
// body is a token without a label, as before labels existed.
func tokenLabel(r *http.Request) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return "", fmt.Errorf("%w: request body: %v", errBadRequest, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", nil
	}
	var in struct {
		Label string `json:"label"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return "", fmt.Errorf("%w: request body: %v", errBadRequest, err)
	}
	label := strings.TrimSpace(in.Label)
	if len(label) > maxTokenLabel || strings.ContainsFunc(label, unicode.IsControl) {
		return "", fmt.Errorf("%w: label must be at most %d bytes without control characters", errBadRequest, maxTokenLabel)
	}
	return label, nil
}
