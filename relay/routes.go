package relay

import "net/http"

// routeTable is the relay's router. It also keeps every pattern
// registered on it, so that a test can walk the relay's whole HTTP
// surface (relay/isolation_test.go checks every route against another
// tenant's ids) and a new route cannot be left out of it.
type routeTable struct {
	*http.ServeMux
	patterns []string
}

func newRouteTable() *routeTable { return &routeTable{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux.Handle.
func (t *routeTable) Handle(pattern string, h http.Handler) {
	t.patterns = append(t.patterns, pattern)
	t.ServeMux.Handle(pattern, h)
}

// HandleFunc registers f for pattern, as http.ServeMux.HandleFunc.
func (t *routeTable) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	t.Handle(pattern, http.HandlerFunc(f))
}
