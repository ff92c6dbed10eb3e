-- Traffic counters per agent and device port (docs/stats.md).
--
-- stat_samples holds the running totals agents report in heartbeats, as
-- the relays wrote them; the hourly rollup folds them into stat_hourly
-- and deletes them. Totals run since the agent's counters' epoch; base
-- is what the boot that sent them started from.
CREATE TABLE stat_samples (
    agent_id         TEXT NOT NULL,
    host             TEXT NOT NULL,
    port             INTEGER NOT NULL,
    epoch            TEXT NOT NULL,
    boot             BIGINT NOT NULL,
    at               BIGINT NOT NULL,
    bytes_in         BIGINT NOT NULL,
    bytes_out        BIGINT NOT NULL,
    opened_ok        BIGINT NOT NULL,
    refused          BIGINT NOT NULL,
    unreachable      BIGINT NOT NULL,
    not_allowed      BIGINT NOT NULL,
    dedicated        BIGINT NOT NULL,
    base_bytes_in    BIGINT NOT NULL,
    base_bytes_out   BIGINT NOT NULL,
    base_opened_ok   BIGINT NOT NULL,
    base_refused     BIGINT NOT NULL,
    base_unreachable BIGINT NOT NULL,
    base_not_allowed BIGINT NOT NULL,
    base_dedicated   BIGINT NOT NULL,
    PRIMARY KEY (agent_id, host, port, epoch, boot, at)
);

-- stat_cursors holds, per agent and port, the totals the hourly rollup
-- has already counted, and of which epoch and boot.
CREATE TABLE stat_cursors (
    agent_id    TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    epoch       TEXT NOT NULL,
    boot        BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    opened_ok   BIGINT NOT NULL,
    refused     BIGINT NOT NULL,
    unreachable BIGINT NOT NULL,
    not_allowed BIGINT NOT NULL,
    dedicated   BIGINT NOT NULL,
    PRIMARY KEY (agent_id, host, port)
);

-- stat_hourly: what each agent and port moved in each UTC hour (hour is
-- the hour's start), kept 30 days; the source of truth for stat_daily.
CREATE TABLE stat_hourly (
    agent_id    TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    hour        BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    opened_ok   BIGINT NOT NULL,
    refused     BIGINT NOT NULL,
    unreachable BIGINT NOT NULL,
    not_allowed BIGINT NOT NULL,
    dedicated   BIGINT NOT NULL,
    PRIMARY KEY (agent_id, host, port, hour)
);
CREATE INDEX stat_hourly_hour ON stat_hourly (hour);

-- stat_daily: the sums of stat_hourly per UTC day (day is its start),
-- kept 365 days.
CREATE TABLE stat_daily (
    agent_id    TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    day         BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    opened_ok   BIGINT NOT NULL,
    refused     BIGINT NOT NULL,
    unreachable BIGINT NOT NULL,
    not_allowed BIGINT NOT NULL,
    dedicated   BIGINT NOT NULL,
    PRIMARY KEY (agent_id, host, port, day)
);
CREATE INDEX stat_daily_day ON stat_daily (day);
