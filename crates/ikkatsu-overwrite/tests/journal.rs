//! The journal read from directories it did not write: inputs found by the `journal_reader`
//! fuzz target (`scripts/fuzz`).

use ikkatsu_core::ErrorKind;
use ikkatsu_overwrite::journal::{Journal, JournalEntry};
use ikkatsu_storage::FileInfo;

/// A segment numbered `u64::MAX` (a file put there by hand) made `Journal::open` overflow
/// computing the next number; one numbered `u64::MAX - 1` made the next `record` overflow.
#[test]
fn a_segment_with_the_largest_number_is_an_error_not_an_overflow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("18446744073709551615.log"), b"").unwrap();
    let err = Journal::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message().contains("18446744073709551615.log"),
        "{}",
        err.message()
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("18446744073709551614.log"),
        b"{\"begin\":{\"source\":{\"path\":\"a.txt\",\"size\":1},\"before\":null}}\n",
    )
    .unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let pending = journal.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].source.path, "a.txt");
    let entry = JournalEntry {
        source: FileInfo::new("b.txt", 2),
        before: None,
    };
    let err = journal.record(&entry).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert!(
        err.message().contains("18446744073709551615.log"),
        "{}",
        err.message()
    );
    assert_eq!(journal.pending().unwrap(), pending);
}
