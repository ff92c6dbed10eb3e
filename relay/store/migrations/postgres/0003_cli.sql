-- ../0003_cli.sql as PostgreSQL runs it: BYTEA for BLOB.
-- CLI sessions (issue 5: nanodems-tunnel run --token ops_…).
--
-- hash is the SHA-256 of the ops_ token; the token itself is shown once.
-- site_ids is the JSON array of the sites the operator picked, all of
-- tenant_id. user_id is NULL for a session minted with the admin key.
-- expires_at slides (30 days after the last use) but never past
-- hard_cap_at (180 days after created_at); last_used_at is the last slide.
CREATE TABLE cli_sessions (
	id           TEXT PRIMARY KEY,
	hash         BYTEA NOT NULL UNIQUE,
	tenant_id    TEXT NOT NULL REFERENCES tenants (id),
	user_id      TEXT REFERENCES users (id),
	site_ids     TEXT NOT NULL,
	label        TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	hard_cap_at  BIGINT NOT NULL,
	last_used_at BIGINT,
	revoked_at   BIGINT
);
CREATE INDEX cli_sessions_tenant ON cli_sessions (tenant_id, created_at, id);
