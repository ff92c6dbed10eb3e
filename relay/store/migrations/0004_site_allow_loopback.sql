-- allow_loopback lets a site's devices name local targets (loopback,
-- link-local, unspecified or multicast addresses, localhost). Off by
-- default: on a host where an agent runs beside the relay, such a device
-- would reach the relay's own loopback services. The agent applies its own
-- check (--allow-loopback) at dial time whatever the site says.
ALTER TABLE sites ADD COLUMN allow_loopback INTEGER NOT NULL DEFAULT 0;
