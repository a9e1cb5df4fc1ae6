-- mpp spool index: one row per message, one per recipient.
-- Version 3 (PRAGMA user_version = 3). A fresh index is made from this
-- file; an older one is brought up by sql/migrate-N.sql, which takes
-- version N-1 to N (each kept in step with this file).
--
-- Times are Unix seconds (UTC). A message's file is spool_dir/new/ID or
-- spool_dir/cur/ID; the row and the file share the queue id.

CREATE TABLE message (
    id              TEXT PRIMARY KEY,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'deferred',
                                     'held', 'sent', 'failed')),
    auth_user       TEXT NOT NULL,      -- login given to USER
    sender          TEXT NOT NULL,      -- envelope sender; '' for a bounce
    size            INTEGER NOT NULL,   -- bytes of the stored file
    client_addr     TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    lease_host      TEXT,               -- runner holding a 'sending' claim
    lease_pid       INTEGER,
    lease_until     INTEGER,
    held_from       TEXT,               -- state to return to on release
    is_bounce       INTEGER NOT NULL DEFAULT 0,
    done_at         INTEGER             -- when it became sent or failed
, warned_at INTEGER);
-- warned_at (version 3): when the sender was sent the delay warning
-- (delay_warning_time), NULL until then; one per message. It stands where
-- ALTER TABLE in sql/migrate-3.sql puts it, so that an upgraded index has
-- the very text of a fresh one.

CREATE INDEX message_due ON message (state, next_attempt_at);

CREATE TABLE recipient (
    message_id TEXT NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    address    TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'sent', 'failed')),
    last_error TEXT,
    bounced    INTEGER NOT NULL DEFAULT 0,  -- 1 once reported to the sender
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;

-- Totals since the index was made or upgraded to version 2 (they start
-- at 0 then): never lowered, so they serve as Prometheus counters while
-- old rows are purged. Names: accepted, bounces, attempts, rcpt_sent,
-- rcpt_deferred, rcpt_failed.
CREATE TABLE counter (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

PRAGMA user_version = 3;
