-- Version 1 to 2: totals kept across purges (see schema.sql).
CREATE TABLE counter (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

PRAGMA user_version = 2;
