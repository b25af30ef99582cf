-- The run lease of each namespace: which process runs the flow now (JSON in `holder`).
CREATE TABLE IF NOT EXISTS ikkatsu_status_lease (
    namespace VARBINARY(64) NOT NULL PRIMARY KEY,
    token     VARCHAR(512) NOT NULL,
    holder    TEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
