-- ikkatsu job repository, modelled on Spring Batch's BATCH_* tables.
-- Text compares byte-wise (utf8mb4_bin) so that job names are case-sensitive as elsewhere;
-- JSON is LONGTEXT checked with JSON_VALID (MariaDB's JSON is the same).

CREATE TABLE IF NOT EXISTS ikkatsu_job_instance (
    id        BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_name  VARCHAR(255) NOT NULL,
    job_key   VARCHAR(64) NOT NULL,
    version   BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT ikkatsu_job_instance_key UNIQUE (job_name, job_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS ikkatsu_job_execution (
    id                         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    version                    BIGINT NOT NULL,
    job_instance_id            BIGINT NOT NULL,
    create_time                DATETIME(6) NOT NULL,
    start_time                 DATETIME(6) NULL,
    end_time                   DATETIME(6) NULL,
    status                     VARCHAR(16) NOT NULL,
    exit_code                  VARCHAR(2500) NOT NULL,
    exit_description           TEXT NOT NULL,
    last_updated               DATETIME(6) NOT NULL,
    owner                      VARCHAR(255) NULL,
    job_configuration_location TEXT NULL,
    parameters                 LONGTEXT NOT NULL CHECK (JSON_VALID(parameters)),
    execution_context          LONGTEXT NOT NULL CHECK (JSON_VALID(execution_context)),
    CONSTRAINT ikkatsu_job_execution_instance_fk FOREIGN KEY (job_instance_id) REFERENCES ikkatsu_job_instance (id),
    INDEX ikkatsu_job_execution_status (status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS ikkatsu_step_execution (
    id                 BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    version            BIGINT NOT NULL,
    job_execution_id   BIGINT NOT NULL,
    step_name          VARCHAR(255) NOT NULL,
    status             VARCHAR(16) NOT NULL,
    exit_code          VARCHAR(2500) NOT NULL,
    exit_description   TEXT NOT NULL,
    read_count         BIGINT NOT NULL DEFAULT 0,
    write_count        BIGINT NOT NULL DEFAULT 0,
    filter_count       BIGINT NOT NULL DEFAULT 0,
    read_skip_count    BIGINT NOT NULL DEFAULT 0,
    process_skip_count BIGINT NOT NULL DEFAULT 0,
    write_skip_count   BIGINT NOT NULL DEFAULT 0,
    commit_count       BIGINT NOT NULL DEFAULT 0,
    rollback_count     BIGINT NOT NULL DEFAULT 0,
    start_time         DATETIME(6) NULL,
    end_time           DATETIME(6) NULL,
    last_updated       DATETIME(6) NOT NULL,
    execution_context  LONGTEXT NOT NULL CHECK (JSON_VALID(execution_context)),
    CONSTRAINT ikkatsu_step_execution_job_fk FOREIGN KEY (job_execution_id) REFERENCES ikkatsu_job_execution (id),
    INDEX ikkatsu_step_execution_job (job_execution_id, step_name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
