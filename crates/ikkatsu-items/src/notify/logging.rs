//! [`LoggingListener`]: every listener interface at once, each event written to the log
//! (target `ikkatsu::listener`). Registered under the names Surfin Batch's JSL uses for its
//! logging listeners (`loggingJobListener`, `loggingStepListener`, ...; see
//! [`crate::register`]). Job, step, chunk, skip and retry events are logged at `info` (a
//! skip or a retry at `warn`), each item read, processed or written at `debug`.

use async_trait::async_trait;

use ikkatsu_core::listener::{
    ChunkListener, ItemProcessListener, ItemReadListener, ItemWriteListener, JobExecutionListener,
    RetryEvent, RetryListener, SkipListener, StepExecutionListener,
};
use ikkatsu_core::{Error, ExitStatus, JobExecution, Record, Result, StepExecution};

const TARGET: &str = "ikkatsu::listener";

/// Logs the events of every listener interface (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingListener;

#[async_trait]
impl JobExecutionListener for LoggingListener {
    async fn before_job(&self, execution: &JobExecution) -> Result<()> {
        tracing::info!(target: TARGET, job = %execution.job_name, execution = execution.id, "job started");
        Ok(())
    }

    async fn after_job(&self, execution: &JobExecution) -> Result<()> {
        tracing::info!(
            target: TARGET,
            job = %execution.job_name,
            execution = execution.id,
            status = %execution.status,
            exit_code = %execution.exit_status.exit_code,
            "job ended"
        );
        Ok(())
    }
}

#[async_trait]
impl StepExecutionListener for LoggingListener {
    async fn before_step(&self, execution: &StepExecution) -> Result<()> {
        tracing::info!(target: TARGET, step = %execution.step_name, "step started");
        Ok(())
    }

    async fn after_step(&self, execution: &StepExecution) -> Result<Option<ExitStatus>> {
        let c = &execution.counts;
        tracing::info!(
            target: TARGET,
            step = %execution.step_name,
            status = %execution.status,
            read = c.read_count,
            written = c.write_count,
            filtered = c.filter_count,
            skipped = c.skip_count(),
            commits = c.commit_count,
            rollbacks = c.rollback_count,
            "step ended"
        );
        Ok(None)
    }
}

#[async_trait]
impl ChunkListener for LoggingListener {
    async fn before_chunk(&self, execution: &StepExecution) -> Result<()> {
        tracing::info!(target: TARGET, step = %execution.step_name, "chunk started");
        Ok(())
    }

    async fn after_chunk(&self, execution: &StepExecution) -> Result<()> {
        tracing::info!(
            target: TARGET,
            step = %execution.step_name,
            commits = execution.counts.commit_count,
            "chunk committed"
        );
        Ok(())
    }

    async fn after_chunk_error(&self, execution: &StepExecution, error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, step = %execution.step_name, error = %error.report(), "chunk rolled back");
        Ok(())
    }
}

#[async_trait]
impl ItemReadListener<Record> for LoggingListener {
    async fn after_read(&self, item: &Record) -> Result<()> {
        tracing::debug!(target: TARGET, item = %json(item), "item read");
        Ok(())
    }

    async fn on_read_error(&self, error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, error = %error.report(), "read failed");
        Ok(())
    }
}

#[async_trait]
impl ItemProcessListener<Record, Record> for LoggingListener {
    async fn after_process(&self, item: &Record, result: Option<&Record>) -> Result<()> {
        match result {
            Some(out) => {
                tracing::debug!(target: TARGET, item = %json(item), result = %json(out), "item processed")
            }
            None => tracing::debug!(target: TARGET, item = %json(item), "item filtered out"),
        }
        Ok(())
    }

    async fn on_process_error(&self, item: &Record, error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, item = %json(item), error = %error.report(), "processing failed");
        Ok(())
    }
}

#[async_trait]
impl ItemWriteListener<Record> for LoggingListener {
    async fn after_write(&self, items: &[Record]) -> Result<()> {
        tracing::debug!(target: TARGET, items = items.len(), "items written");
        Ok(())
    }

    async fn on_write_error(&self, items: &[Record], error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, items = items.len(), error = %error.report(), "write failed");
        Ok(())
    }
}

#[async_trait]
impl SkipListener<Record, Record> for LoggingListener {
    async fn on_skip_in_read(&self, error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, error = %error.report(), "skipped in read");
        Ok(())
    }

    async fn on_skip_in_process(&self, item: &Record, error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, item = %json(item), error = %error.report(), "skipped in processing");
        Ok(())
    }

    async fn on_skip_in_write(&self, item: &Record, error: &Error) -> Result<()> {
        tracing::warn!(target: TARGET, item = %json(item), error = %error.report(), "skipped in writing");
        Ok(())
    }
}

#[async_trait]
impl RetryListener for LoggingListener {
    async fn on_retry(&self, event: &RetryEvent<'_>) -> Result<()> {
        tracing::warn!(
            target: TARGET,
            step = %event.step,
            phase = %event.phase,
            attempt = event.attempt,
            limit = event.limit,
            error = %event.error.report(),
            "retrying"
        );
        Ok(())
    }
}

fn json(record: &Record) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use ikkatsu_core::{ErrorKind, JobExecution, JobInstance, JobParameters, StepExecution};
    use serde_json::json;

    use super::*;

    /// Collects what the log writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_event_is_logged() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let listener = LoggingListener;
        let instance = JobInstance {
            id: 1,
            job_name: "daily".into(),
            job_key: String::new(),
        };
        let job = JobExecution::new(&instance, JobParameters::new());
        let step = StepExecution::new(1, "load");
        let item = Record::from_iter([("n".to_string(), json!(7))]);
        let error = Error::new(ErrorKind::Parse, "line 3 is broken");
        JobExecutionListener::before_job(&listener, &job)
            .await
            .unwrap();
        StepExecutionListener::before_step(&listener, &step)
            .await
            .unwrap();
        ItemReadListener::after_read(&listener, &item)
            .await
            .unwrap();
        ItemProcessListener::after_process(&listener, &item, None)
            .await
            .unwrap();
        ItemWriteListener::after_write(&listener, std::slice::from_ref(&item))
            .await
            .unwrap();
        SkipListener::on_skip_in_read(&listener, &error)
            .await
            .unwrap();
        ChunkListener::after_chunk(&listener, &step).await.unwrap();

        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert!(
            lines[0].contains("INFO ikkatsu::listener: job started job=daily"),
            "{text}"
        );
        assert!(lines[1].contains("step started step=load"), "{text}");
        assert!(
            lines[2].contains(r#"DEBUG ikkatsu::listener: item read item={"n":7}"#),
            "{text}"
        );
        assert!(
            lines[3].contains(r#"item filtered out item={"n":7}"#),
            "{text}"
        );
        assert!(lines[4].contains("items written items=1"), "{text}");
        assert!(
            lines[5].contains("WARN ikkatsu::listener: skipped in read error=line 3 is broken"),
            "{text}"
        );
        assert!(
            lines[6].contains("chunk committed step=load commits=0"),
            "{text}"
        );
    }
}
