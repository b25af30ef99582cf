//! The journal reader: the input is a journal directory's files. Its first 8 bytes are the
//! id of the first segment (little endian); the rest, split at NUL bytes, is up to three
//! segments (`NNNNNNNNNNNNNNNNNNNN.log`, one JSON line per event, ids counting up from the
//! first), then up to two entry files of the earlier format (`*.json`) and a torn one
//! (`*.tmp`). `Journal::open` and `Journal::pending` give the journal or an error naming
//! the directory or file, never a panic. Pending entries come sorted by path, each path once; recorded
//! into a new journal they are pending there the same; a cleared journal has none.
#![no_main]

use ikkatsu_overwrite::journal::Journal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first_chunk::<8>() else {
        return;
    };
    let first = u64::from_le_bytes(*first);
    let root = ikkatsu_fuzz::scratch_dir("journal");
    let dir = root.join("journal");
    std::fs::create_dir_all(&dir).expect("creating the journal directory");
    for (i, piece) in body.split(|b| *b == 0).enumerate().take(6) {
        let name = match i {
            0..=2 => format!("{:020}.log", first.wrapping_add(i as u64)),
            3 | 4 => format!("entry-{i}.json"),
            _ => "entry.tmp".to_string(),
        };
        std::fs::write(dir.join(name), piece).expect("writing a journal file");
    }

    let shown = dir.display().to_string();
    let journal = match Journal::open(&dir) {
        Ok(journal) => journal,
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains(&shown), "{message}");
            return;
        }
    };
    let pending = match journal.pending() {
        Ok(pending) => pending,
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains(&shown), "{message}");
            return;
        }
    };
    for pair in pending.windows(2) {
        assert!(pair[0].source.path < pair[1].source.path, "{pending:?}");
    }

    let copy = Journal::open(root.join("copy")).expect("opening a new journal");
    for entry in &pending {
        copy.record(entry).expect("recording an entry");
    }
    copy.finish();
    assert_eq!(copy.pending().ok().as_ref(), Some(&pending));

    journal.clear().expect("clearing the journal");
    assert_eq!(journal.pending().ok().map(|p| p.len()), Some(0));
});
