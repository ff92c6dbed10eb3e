package relay

import "github.com/prometheus/client_golang/prometheus"

// MetricsRegistry is the registry s serves on its metrics listener, for
// tests of relays started without one.
func MetricsRegistry(s *Server) *prometheus.Registry { return s.metrics.reg }
