//! In-memory storage (`memory:` private, `memory:name` shared by name within the process).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use ikkatsu_core::Result;
use opendal::Operator;
use opendal::services::Memory;

use super::opened::Opened;

fn named() -> &'static Mutex<HashMap<String, Operator>> {
    static NAMED: OnceLock<Mutex<HashMap<String, Operator>>> = OnceLock::new();
    NAMED.get_or_init(|| Mutex::new(HashMap::new()))
}

fn fresh(shown: &str) -> Result<Operator> {
    Operator::new(Memory::default()).map_err(|e| crate::error::parse_error(e, "open", "", shown))
}

/// Opens a private memory storage, or the one shared under `name`.
pub(crate) fn open(name: Option<&str>, shown: &str) -> Result<Opened> {
    let operator = match name {
        None => fresh(shown)?,
        Some(name) => {
            let mut map = named()
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match map.get(name) {
                Some(op) => op.clone(),
                None => {
                    let op = fresh(shown)?;
                    map.insert(name.to_string(), op.clone());
                    op
                }
            }
        }
    };
    Ok(Opened {
        operator,
        local_root: None,
        reports_modified: false,
        uploader: None,
        empty_files: None,
        stat_before_read: false,
        listing_is_stat: false,
    })
}
