package mux

// EnrollRequest is the body of the relay's POST /api/enroll: the site's
// one-shot token and a CSR for a key made on the site PC.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"` // PEM
}

// EnrollResponse is the relay's answer to an enrollment.
type EnrollResponse struct {
	AgentID     string `json:"agent_id"`
	SiteID      string `json:"site_id"`
	Certificate string `json:"certificate"` // PEM, CN = AgentID
	CA          string `json:"ca"`          // PEM of the Agent CA
	AgentAddr   string `json:"agent_addr"`  // host:port of the agent listener
}
