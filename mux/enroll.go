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

// ClaimRequest is the body of the relay's POST /api/claim: an embedded
// agent (one that runs on the camera itself) names the manufacturer serial
// its device was pre-registered with, and sends a CSR for a key made on
// the device. The answer is an EnrollResponse.
type ClaimRequest struct {
	Serial string `json:"serial"`
	CSR    string `json:"csr"` // PEM
}
