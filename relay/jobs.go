package relay

import (
	"context"
	"time"
)

// runLocked runs fn every tick on whichever relay of the fleet holds the
// TTL lock name (store.TryLock): each tick the holder renews the lock and
// runs fn, the others try to take it and do nothing. A holder that dies
// stops renewing, and another relay takes the lock at its first tick
// after the TTL has passed; a holder that closes releases the lock, so the
// next takes it at its next tick. ttl must exceed every by a margin, or
// the holder would lose the lock between its own ticks. Config.JobTick,
// when set, replaces every with itself and ttl with three of it.
//
// Each tick is logged at debug level ("locked job tick": name, holder,
// tick number, whether this relay ran the job), so that the relays' logs
// together show which relay ran the job at each tick.
//
// It returns at once; the job ends with the Server.
func (s *Server) runLocked(name string, every, ttl time.Duration, fn func(context.Context)) {
	if s.cfg.JobTick > 0 {
		every, ttl = s.cfg.JobTick, 3*s.cfg.JobTick
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		t := time.NewTicker(every)
		defer t.Stop()
		held := false
		for tick := 1; ; tick++ {
			ok, err := s.store.TryLock(ctx, name, s.cfg.NodeName, ttl, s.cfg.Now())
			if err != nil {
				s.log.Warn("lock", "name", name, "err", err)
			}
			if ok != held {
				s.log.Info("lock", "name", name, "held", ok)
				held = ok
			}
			if ok {
				fn(ctx)
			}
			s.log.Debug("locked job tick", "name", name, "holder", s.cfg.NodeName, "tick", tick, "ran", ok)
			select {
			case <-t.C:
			case <-s.done:
				if held && !s.crashed.Load() {
					rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
					s.store.ReleaseLock(rctx, name, s.cfg.NodeName)
					rcancel()
				}
				return
			}
		}
	}()
}
