//! [`Fields`]: the ordered, unique field names that records of one shape share, and the
//! caches of the fields derived from them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// Up to this many fields, a name is looked up by a linear scan; beyond, by a hash index
/// built on the first lookup.
const LINEAR_LOOKUP_MAX: usize = 12;

/// How many derived [`Fields`] (per kind of change) one [`Fields`] remembers. Beyond, a
/// change makes an uncached [`Fields`]: records still work, they just share less.
const TRANSITIONS_MAX: usize = 32;

/// The empty fields every [`Record::new`] starts from, so records built key by key from
/// scratch share their [`Fields`] through the transition caches.
static EMPTY: LazyLock<Arc<Fields>> = LazyLock::new(|| Arc::new(Fields::from_unique(Vec::new())));

/// The ordered, unique field names of records of one shape, shared by those records.
///
/// Also caches the fields derived from it by [`Record::insert`] (a key appended, a key moved
/// to the end), so records of the same shape that change the same way keep sharing. The
/// cache holds at most 32 entries of each kind and keeps them alive as long as this
/// [`Fields`] lives; the empty fields that [`Record::new`] starts from live for the whole
/// process.
pub struct Fields {
    pub(super) names: Vec<String>,
    /// Name → position, built on the first lookup when there are many names.
    index: OnceLock<HashMap<String, usize>>,
    /// Key → these fields with the key appended.
    appended: Mutex<Vec<(String, Arc<Fields>)>>,
    /// Key → these fields with the key moved to the end.
    moved: Mutex<Vec<(String, Arc<Fields>)>>,
}

impl Fields {
    /// Fields with `names` in order; a name given twice is kept at its first position only.
    pub fn new<I, S>(names: I) -> Arc<Fields>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut unique: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let name = name.into();
            if seen.insert(name.clone()) {
                unique.push(name);
            }
        }
        Arc::new(Fields::from_unique(unique))
    }

    /// The fields without any name, shared by every record made by [`Record::new`].
    pub fn empty() -> Arc<Fields> {
        Arc::clone(&EMPTY)
    }

    pub(super) fn from_unique(names: Vec<String>) -> Fields {
        Fields {
            names,
            index: OnceLock::new(),
            appended: Mutex::new(Vec::new()),
            moved: Mutex::new(Vec::new()),
        }
    }

    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The position of `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        if self.names.len() <= LINEAR_LOOKUP_MAX {
            return self.names.iter().position(|n| n == name);
        }
        self.index
            .get_or_init(|| {
                self.names
                    .iter()
                    .enumerate()
                    .map(|(position, name)| (name.clone(), position))
                    .collect()
            })
            .get(name)
            .copied()
    }

    /// The position of `name`, trying `hint` first.
    pub(super) fn position_from(&self, hint: usize, name: &str) -> Option<usize> {
        match self.names.get(hint) {
            Some(candidate) if candidate == name => Some(hint),
            _ => self.position(name),
        }
    }

    /// These fields with `name` (not one of them) appended, shared with every earlier caller
    /// that appended the same name to these fields.
    pub fn appended(self: &Arc<Self>, name: &str) -> Arc<Fields> {
        self.derived(&self.appended, name, || {
            let mut names = Vec::with_capacity(self.names.len() + 1);
            names.extend(self.names.iter().cloned());
            names.push(name.to_owned());
            names
        })
    }

    /// These fields with `name` (one of them) moved to the end, shared like
    /// [`appended`](Fields::appended).
    pub(super) fn moved_to_end(self: &Arc<Self>, name: &str) -> Arc<Fields> {
        self.derived(&self.moved, name, || {
            let mut names: Vec<String> = Vec::with_capacity(self.names.len());
            names.extend(self.names.iter().filter(|n| *n != name).cloned());
            names.push(name.to_owned());
            names
        })
    }

    fn derived(
        &self,
        cache: &Mutex<Vec<(String, Arc<Fields>)>>,
        name: &str,
        names: impl FnOnce() -> Vec<String>,
    ) -> Arc<Fields> {
        // A poisoned cache only means another thread panicked while holding it; the list
        // itself is always consistent (entries are pushed whole).
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, fields)) = cache.iter().find(|(key, _)| key == name) {
            return Arc::clone(fields);
        }
        let fields = Arc::new(Fields::from_unique(names()));
        if cache.len() < TRANSITIONS_MAX {
            cache.push((name.to_owned(), Arc::clone(&fields)));
        }
        fields
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.names).finish()
    }
}
