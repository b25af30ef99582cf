-- The status store of the overwrite flow: one row per (namespace, source path).
-- Keys are binary: paths compare byte for byte (case and trailing spaces matter), and
-- 64 + 3000 bytes stay within InnoDB's 3072-byte key limit.
CREATE TABLE IF NOT EXISTS ikkatsu_file_status (
    namespace   VARBINARY(64) NOT NULL,
    path        VARBINARY(3000) NOT NULL,
    state       VARCHAR(8) NOT NULL,
    uploaded    TEXT,
    failed      TEXT,
    error_count INT NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (namespace, path)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
