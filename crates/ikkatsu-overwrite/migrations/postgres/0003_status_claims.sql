-- Cooperating runs of a flow (`holder`: the run as JSON; `expires_ms`: Unix milliseconds)
-- and their claims on files (`claimed`: the file as claimed, JSON).
CREATE TABLE IF NOT EXISTS ikkatsu_status_run (
    namespace  VARCHAR(64) COLLATE "C" NOT NULL,
    token      TEXT COLLATE "C" NOT NULL,
    holder     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, token)
);
CREATE TABLE IF NOT EXISTS ikkatsu_status_claim (
    namespace VARCHAR(64) COLLATE "C" NOT NULL,
    path      TEXT COLLATE "C" NOT NULL,
    token     TEXT COLLATE "C" NOT NULL,
    claimed   TEXT NOT NULL,
    PRIMARY KEY (namespace, path)
);
