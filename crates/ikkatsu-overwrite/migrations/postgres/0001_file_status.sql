-- The status store of the overwrite flow: one row per (namespace, source path).
CREATE TABLE IF NOT EXISTS ikkatsu_file_status (
    namespace   VARCHAR(64) COLLATE "C" NOT NULL,
    path        TEXT COLLATE "C" NOT NULL,
    state       VARCHAR(8) NOT NULL,
    uploaded    TEXT,
    failed      TEXT,
    error_count INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, path)
);
