-- ../0002_web.sql as PostgreSQL runs it: BYTEA for BLOB.
-- Browser sign-in sessions, device credentials and camera certificates
-- (issue 3: the browser proxy).

-- hash is the SHA-256 of the session cookie; tenant_id is the tenant the
-- session acts in (superadmins switch it). csrf is the antiforgery token
-- its forms carry.
CREATE TABLE sessions (
	hash       BYTEA PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id),
	tenant_id  TEXT REFERENCES tenants (id),
	csrf       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- sealed is the device's login, encrypted under the relay's device key
-- (AES-256-GCM); the relay never returns it through the API.
CREATE TABLE device_credentials (
	device_id  TEXT PRIMARY KEY REFERENCES devices (id),
	sealed     BYTEA NOT NULL,
	updated_at BIGINT NOT NULL
);

-- The certificate an HTTPS camera showed on its first handshake through a
-- handle, so a later change is noticed and audited.
CREATE TABLE camera_certs (
	handle      TEXT PRIMARY KEY REFERENCES handles (handle),
	subject     TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	first_seen  BIGINT NOT NULL,
	last_seen   BIGINT NOT NULL
);
