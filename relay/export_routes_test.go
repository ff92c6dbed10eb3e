package relay

// RoutePatterns is every pattern the relay's router registers, in
// registration order.
func RoutePatterns(s *Server) []string { return s.routesMux().(*routeTable).patterns }
