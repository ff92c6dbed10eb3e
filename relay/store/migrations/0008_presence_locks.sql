-- Presence leases: which relay holds an agent's session now, and where
-- the other relays reach it (its peer listener). A lease lives 90 s past
-- the agent's last heartbeat; readers ignore an expired one, so a relay
-- that died without deleting its leases stops being named within that.
CREATE TABLE agent_leases (
    agent_id   TEXT PRIMARY KEY,
    site_id    TEXT NOT NULL,
    relay_node TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    active     BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);
CREATE INDEX agent_leases_site ON agent_leases (site_id, expires_at);

-- TTL locks: one row per job that must run on one relay at a time, taken
-- when free or expired and renewed by its holder.
CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
