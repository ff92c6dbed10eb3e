package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// InstallService registers the agent with the service control manager:
// started automatically at boot, restarted by the manager when it fails.
// Running it again updates the registered command line. It does not start
// the service: the installer does, once the binary is in place. Root is
// not used: the service control manager has no file to write elsewhere.
func InstallService(ctx context.Context, o ServiceOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	m, err := mgr.Connect()
	if err != nil {
		return "", fmt.Errorf("agent service: service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	cfg := mgr.Config{
		DisplayName:  serviceDisplayName,
		Description:  serviceDescription,
		StartType:    mgr.StartAutomatic,
		Dependencies: []string{"Tcpip"},
	}
	s, err := m.OpenService(WindowsServiceName)
	switch {
	case err == nil:
		cur, err := s.Config()
		if err == nil {
			cur.BinaryPathName = windowsCommandLine(o)
			cur.DisplayName, cur.Description, cur.StartType = cfg.DisplayName, cfg.Description, cfg.StartType
			err = s.UpdateConfig(cur)
		}
		if err != nil {
			s.Close()
			return "", fmt.Errorf("agent service: update %s: %w", WindowsServiceName, err)
		}
	default:
		s, err = m.CreateService(WindowsServiceName, o.Binary, cfg, "run", "--data-dir", o.Dir)
		if err != nil {
			return "", fmt.Errorf("agent service: create %s: %w", WindowsServiceName, err)
		}
	}
	defer s.Close()
	// Restart after 5 s on each of the first three failures in a day.
	restart := mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: 5 * time.Second}
	if err := s.SetRecoveryActions([]mgr.RecoveryAction{restart, restart, restart}, 24*60*60); err != nil {
		return "", fmt.Errorf("agent service: recovery actions: %w", err)
	}
	return fmt.Sprintf("registered service %s; start it with: sc start %s", WindowsServiceName, WindowsServiceName), nil
}

// windowsCommandLine is the service's command line, quoted as
// CreateService quotes it.
func windowsCommandLine(o ServiceOptions) string {
	return windows.EscapeArg(o.Binary) + " run --data-dir " + windows.EscapeArg(o.Dir)
}

// UninstallService stops the service if it runs and removes it. The
// state directory (the agent's identity) stays.
func UninstallService(ctx context.Context, o ServiceOptions) (string, error) {
	m, err := mgr.Connect()
	if err != nil {
		return "", fmt.Errorf("agent service: service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(WindowsServiceName)
	if err != nil {
		return "not installed: no service " + WindowsServiceName, nil
	}
	defer s.Close()
	if st, err := s.Query(); err == nil && st.State != svc.Stopped {
		if _, err := s.Control(svc.Stop); err != nil {
			return "", fmt.Errorf("agent service: stop %s: %w", WindowsServiceName, err)
		}
		for i := 0; i < 100; i++ {
			if st, err := s.Query(); err != nil || st.State == svc.Stopped {
				break
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if err := s.Delete(); err != nil {
		return "", fmt.Errorf("agent service: delete %s: %w", WindowsServiceName, err)
	}
	return "removed service " + WindowsServiceName, nil
}

// ServiceStatus says whether the service is registered and its state.
func ServiceStatus(ctx context.Context, o ServiceOptions) (string, error) {
	m, err := mgr.Connect()
	if err != nil {
		return "", fmt.Errorf("agent service: service control manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(WindowsServiceName)
	if err != nil {
		return "not installed: no service " + WindowsServiceName, nil
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return "", fmt.Errorf("agent service: query %s: %w", WindowsServiceName, err)
	}
	return fmt.Sprintf("installed (%s), %s", WindowsServiceName, stateName(st.State)), nil
}

func stateName(s svc.State) string {
	switch s {
	case svc.Stopped:
		return "stopped"
	case svc.StartPending:
		return "starting"
	case svc.StopPending:
		return "stopping"
	case svc.Running:
		return "running"
	case svc.ContinuePending, svc.PausePending, svc.Paused:
		return "paused"
	}
	return fmt.Sprintf("state %d", s)
}

// RunService runs run as the process's main work. Started by the service
// control manager, the process must answer it: svc.Run reports Running,
// and Stop or Shutdown cancels run's context, so the agent closes its
// session cleanly before the process reports Stopped. Started from a
// console, it only calls run.
func RunService(ctx context.Context, run func(context.Context) error) error {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return fmt.Errorf("agent service: %w", err)
	}
	if !isService {
		return run(ctx)
	}
	h := &serviceHandler{ctx: ctx, run: run}
	if err := svc.Run(WindowsServiceName, h); err != nil {
		return fmt.Errorf("agent service: %w", err)
	}
	return h.err
}

// serviceHandler is the agent as the service control manager sees it.
type serviceHandler struct {
	ctx context.Context
	run func(context.Context) error
	err error // run's error, once Execute returns
}

func (h *serviceHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	status <- svc.Status{State: svc.StartPending}
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil && !errors.Is(err, context.Canceled) {
				// A non-zero exit code makes the manager apply the
				// recovery actions (a restart).
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
				h.err = <-done
				if errors.Is(h.err, context.Canceled) {
					h.err = nil
				}
				return false, 0
			}
		}
	}
}
