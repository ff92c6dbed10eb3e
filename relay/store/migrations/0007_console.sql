-- The console's Account → CLI tokens page shows each API token's label
-- and when it was last used; the Agents page lists a tenant's agents a
-- page at a time (agents join sites for the tenant, in creation order).
ALTER TABLE api_tokens ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
CREATE INDEX agents_created ON agents (created_at, id);
-- The Sites page counts each site's devices (CountDevices): an index of
-- the live devices by site answers the count without reading the rows.
CREATE INDEX devices_site_live ON devices (site_id) WHERE deleted_at IS NULL;
