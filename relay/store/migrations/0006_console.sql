-- The console's Account → CLI tokens page shows each API token's label
-- and when it was last used; the Agents page lists a tenant's agents a
-- page at a time (agents join sites for the tenant, in creation order).
ALTER TABLE api_tokens ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
CREATE INDEX agents_created ON agents (created_at, id);
