-- RTSP credentials: the user and secret a VMS keeps in a plain
-- rtsp://user:secret@relay:9554/{handle}/… URL, checked by the RTSP
-- gateway with Digest (docs/rtsp.md).
--
-- id is also the Digest user name. ha1 is the hex of
-- MD5(id:realm:secret) for the gateway's fixed realm: what Digest needs to
-- check a response, and all that is stored of the secret, which is shown
-- once. site_id is empty for a credential of the whole tenant.
-- expires_at is NULL for one that does not expire.
CREATE TABLE rtsp_credentials (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id),
	site_id    TEXT NOT NULL DEFAULT '',
	name       TEXT NOT NULL,
	ha1        TEXT NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT,
	revoked_at BIGINT
);
CREATE INDEX rtsp_credentials_tenant ON rtsp_credentials (tenant_id, created_at, id);
