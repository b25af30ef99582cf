-- The run lease of each namespace: which process runs the flow now (JSON in `holder`).
CREATE TABLE IF NOT EXISTS ikkatsu_status_lease (
    namespace VARCHAR(64) COLLATE "C" NOT NULL PRIMARY KEY,
    token     TEXT NOT NULL,
    holder    TEXT NOT NULL
);
