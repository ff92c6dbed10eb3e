-- The relay's initial schema.
--
-- Kept to types both SQLite and PostgreSQL understand so the PostgreSQL
-- backend can mirror it; the exceptions are BLOB (bytea) and the audit id
-- (an identity column there). Times are BIGINT microseconds since the Unix
-- epoch, UTC, which is also PostgreSQL's timestamp resolution; NULL means
-- unset. Booleans are INTEGER 0/1.

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- tenant_id is NULL for superadmins, who belong to no tenant.
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	tenant_id     TEXT REFERENCES tenants (id),
	email         TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	superadmin    INTEGER NOT NULL DEFAULT 0,
	created_at    BIGINT NOT NULL
);

CREATE TABLE api_tokens (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id),
	tenant_id  TEXT REFERENCES tenants (id),
	hash       BLOB NOT NULL UNIQUE,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);

CREATE TABLE sites (
	id                TEXT PRIMARY KEY,
	tenant_id         TEXT NOT NULL REFERENCES tenants (id),
	name              TEXT NOT NULL,
	allowlist_version BIGINT NOT NULL DEFAULT 0,
	created_at        BIGINT NOT NULL
);
CREATE INDEX sites_tenant ON sites (tenant_id);

CREATE TABLE enrollment_tokens (
	hash       BLOB PRIMARY KEY,
	site_id    TEXT NOT NULL REFERENCES sites (id),
	expires_at BIGINT NOT NULL,
	used_at    BIGINT,
	created_at BIGINT NOT NULL
);

CREATE TABLE agents (
	id          TEXT PRIMARY KEY,
	site_id     TEXT NOT NULL REFERENCES sites (id),
	cert_serial TEXT NOT NULL,
	revoked_at  BIGINT,
	created_at  BIGINT NOT NULL
);
CREATE INDEX agents_site ON agents (site_id, created_at, id);

-- Devices are soft-deleted (deleted_at) so that the handles of a deleted
-- device still resolve, as revoked, and keep pointing at a real row.
-- loopback is the offset of the device's address in 127.0.0.0/8; it stays
-- UNIQUE across deleted devices so an address is never reused.
CREATE TABLE devices (
	id           TEXT PRIMARY KEY,
	site_id      TEXT NOT NULL REFERENCES sites (id),
	host         TEXT NOT NULL,
	ports        TEXT NOT NULL, -- JSON array, in the caller's order
	label        TEXT NOT NULL,
	manufacturer TEXT NOT NULL,
	model        TEXT NOT NULL,
	notes        TEXT NOT NULL,
	loopback     BIGINT NOT NULL UNIQUE,
	created_at   BIGINT NOT NULL,
	deleted_at   BIGINT
);
CREATE INDEX devices_site ON devices (site_id, created_at, id);

-- counters holds monotonic allocators. 'loopback' is the last loopback
-- offset handed out (1 = 127.0.0.1, never assigned), kept apart from the
-- devices so nothing can make it go backwards.
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('loopback', 1);

-- agent_id is the pinned agent, '' until the first tunnel. It has no
-- foreign key: pinning is advisory and the relay checks the agent itself.
CREATE TABLE handles (
	handle     TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id),
	device_id  TEXT NOT NULL REFERENCES devices (id),
	port       INTEGER NOT NULL,
	agent_id   TEXT NOT NULL DEFAULT '',
	expires_at BIGINT,
	revoked_at BIGINT,
	created_at BIGINT NOT NULL
);
CREATE INDEX handles_device ON handles (device_id, port);

-- audit_events is append-only; tenant_id is '' for relay-wide events.
CREATE TABLE audit_events (
	id        INTEGER PRIMARY KEY,
	at        BIGINT NOT NULL,
	tenant_id TEXT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	detail    TEXT NOT NULL
);
CREATE INDEX audit_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_action ON audit_events (action, id);
