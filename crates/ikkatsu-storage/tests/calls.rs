//! Storage operations are external calls of the step that makes them
//! (`ikkatsu_core::call`): each reports its backend, operation, path, bytes or rows,
//! and error; a streamed read is one call, reported when the stream ends or is dropped;
//! outside a scope with listeners nothing is reported.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use ikkatsu_core::call::{CallKind, CallScope, ExternalCall, ExternalCallListener};
use ikkatsu_storage::{Storage, WalkOptions};

#[derive(Default)]
struct Calls(Mutex<Vec<ExternalCall>>);

impl ExternalCallListener for Calls {
    fn on_call(&self, call: &ExternalCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

/// Operation, path, bytes, rows, succeeded.
type Seen = (String, String, Option<u64>, Option<u64>, bool);

fn summary(calls: &[ExternalCall]) -> Vec<Seen> {
    calls
        .iter()
        .map(|c| {
            assert_eq!(c.kind, CallKind::Storage);
            assert_eq!(c.backend, "fs");
            assert_eq!(&*c.step_name, "step");
            (
                c.operation.clone(),
                c.target.clone(),
                c.bytes,
                c.rows,
                c.succeeded(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_operation_is_one_call_with_its_path_bytes_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&format!("file://{}", dir.path().display())).unwrap();
    // Outside a scope: not reported (and nothing to report to).
    storage.write("setup.txt", "x").await.unwrap();

    let calls = Arc::new(Calls::default());
    let listener: Arc<dyn ExternalCallListener> = calls.clone();
    CallScope::new("step", 1, vec![listener])
        .run(async {
            storage.write("a/one.txt", "hello").await.unwrap();
            assert_eq!(storage.read("a/one.txt").await.unwrap(), "hello");
            assert_eq!(storage.read_range("a/one.txt", 1..3).await.unwrap(), "el");
            let whole: Vec<_> = storage.reader("a/one.txt").await.unwrap().collect().await;
            assert_eq!(whole.len(), 1);
            // Dropped after nothing was read: reported with what was read.
            drop(storage.reader_from("a/one.txt", 2).await.unwrap());
            let listed: Vec<_> = storage.list("a", false).unwrap().collect().await;
            assert_eq!(listed.len(), 1);
            let walked: Vec<_> = storage
                .walk(WalkOptions::default())
                .unwrap()
                .collect()
                .await;
            assert_eq!(walked.len(), 2);
            let missing = storage.read("a/missing.txt").await.unwrap_err();
            assert!(missing.to_string().contains("missing.txt"), "{missing}");
            storage.delete("a/one.txt").await.unwrap();
        })
        .await;

    let calls = calls.0.lock().unwrap();
    let seen = summary(&calls);
    let s = |op: &str, path: &str, bytes: Option<u64>, rows: Option<u64>, ok: bool| {
        (op.to_string(), path.to_string(), bytes, rows, ok)
    };
    assert_eq!(
        seen,
        [
            // A write reads back the new file's information: a stat of its own.
            s("stat", "a/one.txt", None, None, true),
            s("write", "a/one.txt", Some(5), None, true),
            s("read", "a/one.txt", Some(5), None, true),
            s("read", "a/one.txt", Some(2), None, true),
            s("read", "a/one.txt", Some(5), None, true),
            s("read", "a/one.txt", Some(0), None, true),
            s("list", "a/", None, Some(1), true),
            s("list", "", None, Some(2), true),
            s("read", "a/missing.txt", None, None, false),
            s("delete", "a/one.txt", None, None, true),
        ]
    );
    let failed = calls.iter().find(|c| !c.succeeded()).unwrap();
    assert!(
        failed.error.as_deref().unwrap().contains("missing.txt"),
        "{failed:?}"
    );
}
