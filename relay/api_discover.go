package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/nanodems/connector/internal/iprange"
	"github.com/nanodems/connector/mux"
	"github.com/nanodems/connector/relay/store"
)

// lanScans is the part of the operator edge that has a site's agent look
// at its LAN: ONVIF discovery and port probes for bulk add
// (docs/api.md, "Discovery and bulk add"). It starts runs and reads their
// results; the runs themselves are the agent side's (lanruns.go).
type lanScans struct {
	base
	auth   *authenticator
	runner lanRunner
}

// lanRunner is what lanScans asks of the agent side: the Server.
type lanRunner interface {
	startLANRun(ctx context.Context, site store.Site, r lanRun) (lanRun, error)
	lanRun(siteID, id string) (lanRun, bool)
}

var _ lanRunner = (*Server)(nil)

// probeInput is the body of POST /api/sites/{siteId}/probes.
type probeInput struct {
	Range string `json:"range"`
	Ports []int  `json:"ports"`
}

// maxProbePorts matches the agent's bound (agent/probe.go).
const maxProbePorts = 16

// defaultProbePorts are probed when a request names none: HTTP, HTTPS,
// RTSP.
var defaultProbePorts = []int{80, 443, 554}

// startDiscovery (POST /api/sites/{siteId}/discoveries) asks an agent of
// the site to run ONVIF discovery; the answer (202) names the run to
// poll.
func (s *lanScans) startDiscovery(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	// An empty body, or {}, is the only input.
	if b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10)); len(b) > 0 && !json.Valid(b) {
		return fmt.Errorf("%w: request body is not JSON", errBadRequest)
	}
	run, err := s.runner.startLANRun(r.Context(), site, lanRun{Kind: runDiscovery, Actor: p.Actor})
	if err != nil {
		return err
	}
	return s.writeRun(w, r, http.StatusAccepted, site, run)
}

// startProbe (POST /api/sites/{siteId}/probes) asks an agent of the site
// to probe a range's ports. The range is checked here as the agent will
// (at most a /22); that it lies on the agent's LAN only the agent knows.
func (s *lanScans) startProbe(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	var in probeInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	rng, err := iprange.Parse(in.Range)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	ports := in.Ports
	if len(ports) == 0 {
		ports = defaultProbePorts
	}
	if len(ports) > maxProbePorts {
		return fmt.Errorf("%w: %d ports: a probe takes at most %d", errBadRequest, len(ports), maxProbePorts)
	}
	for _, port := range ports {
		if port < 1 || port > 65535 {
			return fmt.Errorf("%w: port %d is out of range", errBadRequest, port)
		}
	}
	run, err := s.runner.startLANRun(r.Context(), site, lanRun{Kind: runProbe, Range: rng.String(), Ports: ports, Actor: p.Actor, Total: rng.Len()})
	if err != nil {
		return err
	}
	return s.writeRun(w, r, http.StatusAccepted, site, run)
}

// getRun (GET /api/sites/{siteId}/runs/{runId}) is a run so far.
func (s *lanScans) getRun(w http.ResponseWriter, r *http.Request, p Principal) error {
	site, err := s.siteFor(r, p, r.PathValue("siteId"))
	if err != nil {
		return err
	}
	run, ok := s.runner.lanRun(site.ID, r.PathValue("runId"))
	if !ok {
		return fmt.Errorf("%w: run %s of site %s (runs are kept %v after they end)", store.ErrNotFound, r.PathValue("runId"), site.ID, runTTL)
	}
	return s.writeRun(w, r, http.StatusOK, site, run)
}

// foundJSON is a host a run found, as the API shows it.
type foundJSON struct {
	mux.Found
	// Added: a device of the site already has this host.
	Added bool `json:"added"`
	// AddPorts are the ports a device made from this host gets: for a
	// probe, those that answered; for discovery, HTTP and RTSP and the
	// ports the device advertises.
	AddPorts []int `json:"add_ports"`
}

// runJSON is a run as the API shows it.
type runJSON struct {
	ID        string      `json:"id"`
	SiteID    string      `json:"site_id"`
	Kind      string      `json:"kind"`
	State     string      `json:"state"`
	Error     string      `json:"error,omitempty"`
	Range     string      `json:"range,omitempty"`
	Ports     []int       `json:"ports,omitempty"`
	Done      int         `json:"done"`
	Total     int         `json:"total"`
	StartedAt time.Time   `json:"started_at"`
	EndedAt   *time.Time  `json:"ended_at,omitempty"`
	Found     []foundJSON `json:"found"`
}

func (s *lanScans) writeRun(w http.ResponseWriter, r *http.Request, status int, site store.Site, run lanRun) error {
	devs, err := s.store.ListDevices(r.Context(), site.ID)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, d := range devs {
		have[d.Host] = true
	}
	out := runJSON{ID: run.ID, SiteID: run.SiteID, Kind: run.Kind, State: run.State, Error: run.Error, Range: run.Range, Ports: run.Ports,
		Done: run.Done, Total: run.Total, StartedAt: run.Started, Found: []foundJSON{}}
	if !run.Ended.IsZero() {
		out.EndedAt = &run.Ended
	}
	for _, f := range run.Found {
		out.Found = append(out.Found, foundJSON{Found: f, Added: have[f.Host], AddPorts: addPorts(run.Kind, f)})
	}
	slices.SortFunc(out.Found, func(a, b foundJSON) int { return compareHosts(a.Host, b.Host) })
	writeJSON(w, status, out)
	return nil
}

// addPorts are the ports of a device made from f (see foundJSON).
func addPorts(kind string, f mux.Found) []int {
	ps := slices.Clone(f.Ports)
	if kind == runDiscovery {
		for _, p := range []int{80, 554} {
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.Sort(ps)
	return ps
}
