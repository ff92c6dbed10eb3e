-- Indexes for the paged lists (relay/store/lists.go): each list walks its
-- parent's rows in (created_at, id) order from a cursor.
CREATE INDEX sites_tenant_created ON sites (tenant_id, created_at, id);
CREATE INDEX users_tenant_created ON users (tenant_id, created_at, id);
CREATE INDEX api_tokens_user_created ON api_tokens (user_id, created_at, id);
