//go:build tools

// Package tools records the linters .ci/run builds (staticcheck), so that
// go.mod pins their versions.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
