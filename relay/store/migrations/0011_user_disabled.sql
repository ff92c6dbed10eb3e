-- A user is disabled rather than deleted: tokens, sessions, CLI sessions
-- and audit rows name it, and a disabled account must stay unusable and
-- keep its email taken. NULL: active.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
