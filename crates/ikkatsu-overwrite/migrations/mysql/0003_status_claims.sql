-- Cooperating runs of a flow (`holder`: the run as JSON; `expires_ms`: Unix milliseconds)
-- and their claims on files (`claimed`: the file as claimed, JSON).
CREATE TABLE IF NOT EXISTS ikkatsu_status_run (
    namespace  VARBINARY(64) NOT NULL,
    token      VARBINARY(512) NOT NULL,
    holder     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, token)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE IF NOT EXISTS ikkatsu_status_claim (
    namespace VARBINARY(64) NOT NULL,
    path      VARBINARY(3000) NOT NULL,
    token     VARBINARY(512) NOT NULL,
    claimed   TEXT NOT NULL,
    PRIMARY KEY (namespace, path)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
