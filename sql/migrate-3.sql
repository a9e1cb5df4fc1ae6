-- Version 2 to 3: when the delay warning went (see schema.sql).
ALTER TABLE message ADD COLUMN warned_at INTEGER;

PRAGMA user_version = 3;
