-- device_serials holds the manufacturer serial a device was pre-registered
-- with, so that an agent running on the device itself can claim it
-- (POST /api/claim) and be bound to the device's site. agent_id and
-- claimed_at are set once, by the claim. A serial is unique among the
-- unclaimed ones: a claim must find exactly one device. A deleted device's
-- row is deleted with it.
CREATE TABLE device_serials (
	device_id  TEXT PRIMARY KEY REFERENCES devices (id),
	serial     TEXT NOT NULL,
	agent_id   TEXT NOT NULL DEFAULT '',
	claimed_at BIGINT,
	created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX device_serials_unclaimed ON device_serials (serial) WHERE claimed_at IS NULL;
CREATE INDEX device_serials_serial ON device_serials (serial);
