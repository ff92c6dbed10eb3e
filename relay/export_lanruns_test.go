package relay

// ActAsOldAgent makes the relay see the connected agent agentID as one
// that predates LAN runs (its hello listed no features), as an agent
// built before them would.
func ActAsOldAgent(s *Server, agentID string) bool {
	s.agents.mu.Lock()
	defer s.agents.mu.Unlock()
	a := s.agents.byID[agentID]
	if a == nil {
		return false
	}
	a.version, a.features = "v0.9.0 (test)", nil
	return true
}
