-- ikkatsu job repository, modelled on Spring Batch's BATCH_* tables.
-- Times are TEXT in RFC 3339 (UTC); JSON is TEXT.

CREATE TABLE IF NOT EXISTS ikkatsu_job_instance (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name  TEXT NOT NULL,
    job_key   TEXT NOT NULL,
    version   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (job_name, job_key)
);

CREATE TABLE IF NOT EXISTS ikkatsu_job_execution (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    version                    INTEGER NOT NULL,
    job_instance_id            INTEGER NOT NULL REFERENCES ikkatsu_job_instance (id),
    create_time                TEXT NOT NULL,
    start_time                 TEXT,
    end_time                   TEXT,
    status                     TEXT NOT NULL,
    exit_code                  TEXT NOT NULL,
    exit_description           TEXT NOT NULL,
    last_updated               TEXT NOT NULL,
    owner                      TEXT,
    job_configuration_location TEXT,
    parameters                 TEXT NOT NULL,
    execution_context          TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ikkatsu_job_execution_instance ON ikkatsu_job_execution (job_instance_id);
CREATE INDEX IF NOT EXISTS ikkatsu_job_execution_status ON ikkatsu_job_execution (status);

CREATE TABLE IF NOT EXISTS ikkatsu_step_execution (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    version            INTEGER NOT NULL,
    job_execution_id   INTEGER NOT NULL REFERENCES ikkatsu_job_execution (id),
    step_name          TEXT NOT NULL,
    status             TEXT NOT NULL,
    exit_code          TEXT NOT NULL,
    exit_description   TEXT NOT NULL,
    read_count         INTEGER NOT NULL DEFAULT 0,
    write_count        INTEGER NOT NULL DEFAULT 0,
    filter_count       INTEGER NOT NULL DEFAULT 0,
    read_skip_count    INTEGER NOT NULL DEFAULT 0,
    process_skip_count INTEGER NOT NULL DEFAULT 0,
    write_skip_count   INTEGER NOT NULL DEFAULT 0,
    commit_count       INTEGER NOT NULL DEFAULT 0,
    rollback_count     INTEGER NOT NULL DEFAULT 0,
    start_time         TEXT,
    end_time           TEXT,
    last_updated       TEXT NOT NULL,
    execution_context  TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ikkatsu_step_execution_job ON ikkatsu_step_execution (job_execution_id, step_name);
