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

-- The claim and the next wake-up (state, due time); mppq's listings by
-- state and by age, oldest first, read in index order so that they
-- stream without a sort; the purge of sent rows past sent_retention.
CREATE INDEX message_due ON message (state, next_attempt_at);
CREATE INDEX message_state_received ON message (state, received_at, id);
CREATE INDEX message_received ON message (received_at, id);
CREATE INDEX message_sent_done ON message (done_at) WHERE state = 'sent';

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

-- Messages and bytes per state, kept by the triggers below in the same
-- transaction as every change of a row: mppq stats reads six rows
-- instead of counting the queue.
CREATE TABLE state_total (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO state_total (state, n, bytes) VALUES ('queued', 0, 0),
    ('sending', 0, 0), ('deferred', 0, 0), ('held', 0, 0), ('sent', 0, 0),
    ('failed', 0, 0);

CREATE TRIGGER state_total_insert AFTER INSERT ON message BEGIN
    UPDATE state_total SET n = n + 1, bytes = bytes + NEW.size
        WHERE state = NEW.state;
END;

CREATE TRIGGER state_total_delete AFTER DELETE ON message BEGIN
    UPDATE state_total SET n = n - 1, bytes = bytes - OLD.size
        WHERE state = OLD.state;
END;

CREATE TRIGGER state_total_update AFTER UPDATE OF state, size ON message
    WHEN OLD.state IS NOT NEW.state OR OLD.size IS NOT NEW.size BEGIN
    UPDATE state_total SET n = n - 1, bytes = bytes - OLD.size
        WHERE state = OLD.state;
    UPDATE state_total SET n = n + 1, bytes = bytes + NEW.size
        WHERE state = NEW.state;
END;

PRAGMA user_version = 4;
