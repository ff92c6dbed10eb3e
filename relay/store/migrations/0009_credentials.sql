-- The credentials of programs that act for a tenant without a user of
-- their own (docs/api.md, "Credentials").
--
-- licenses: the license GUIDs of external operator consoles (OpCon),
-- issued and rotated by the licensing application through the admin API.
-- guid_hash is the hex SHA-256 of the GUID (the GUID is shown once, at
-- issue); hint is its last four characters, for people telling licenses
-- apart.
CREATE TABLE licenses (
	id         TEXT PRIMARY KEY,
	guid_hash  TEXT NOT NULL UNIQUE,
	hint       TEXT NOT NULL,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id),
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE INDEX licenses_tenant ON licenses (tenant_id, created_at, id);

-- partner_keys: the nk_ keys partners' servers mint CLI sessions with.
-- hash is the hex SHA-256 of the key; allowed_ip_cidr, when not empty,
-- is the only network the key is accepted from.
CREATE TABLE partner_keys (
	id              TEXT PRIMARY KEY,
	hash            TEXT NOT NULL UNIQUE,
	tenant_id       TEXT NOT NULL REFERENCES tenants (id),
	label           TEXT NOT NULL,
	allowed_ip_cidr TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	revoked_at      BIGINT
);
CREATE INDEX partner_keys_tenant ON partner_keys (tenant_id, created_at, id);

-- A CLI session minted with a partner key records the key (its issuer,
-- revoked with it) and the partner's operator it was minted for.
ALTER TABLE cli_sessions ADD COLUMN issuer_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE cli_sessions ADD COLUMN external_operator_id TEXT NOT NULL DEFAULT '';
ALTER TABLE cli_sessions ADD COLUMN operator_display_name TEXT NOT NULL DEFAULT '';
CREATE INDEX cli_sessions_issuer ON cli_sessions (issuer_key_id);
