-- Version 3 to 4: indexes for every listing, claim, stats and purge path
-- of a large queue, and per-state totals kept by triggers (see
-- schema.sql). The totals start from the rows there are.
CREATE INDEX message_state_received ON message (state, received_at, id);
CREATE INDEX message_received ON message (received_at, id);
CREATE INDEX message_sent_done ON message (done_at) WHERE state = 'sent';

CREATE TABLE state_total (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO state_total (state, n, bytes)
    SELECT s.state, count(m.id), coalesce(sum(m.size), 0)
    FROM (SELECT 'queued' AS state UNION ALL SELECT 'sending'
          UNION ALL SELECT 'deferred' UNION ALL SELECT 'held'
          UNION ALL SELECT 'sent' UNION ALL SELECT 'failed') s
    LEFT JOIN message m ON m.state = s.state GROUP BY s.state;

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
