//! [`Record`], the item type of YAML-defined jobs, and [`Fields`], the field names that
//! records of the same shape share.
//!
//! A record is a row: an [`Arc<Fields>`] (the ordered, unique field names) and one value slot
//! per field. Readers build one [`Fields`] per file (from a CSV header, from the first JSON
//! object, from a Parquet schema) and every record they read shares it, so a record costs one
//! `Vec` of slots and no key allocation or hashing.
//!
//! A CSV reader goes further with [`Record::from_text`]: the row's text is kept in one
//! `String` and a slot only points into it. Such a string becomes a [`Value`] (one
//! allocation) when it is read by reference ([`Record::get`], iteration), changed or taken;
//! writing it as CSV ([`Record::str_at`]) or JSON does not need that. A CSV row thus costs
//! two allocations, however many fields it has.
//!
//! # Semantics
//!
//! A record behaves like an insertion-ordered map of field names to JSON values (what
//! `serde_json::Map` with `preserve_order` was before):
//!
//! * Iteration, serialization and [`Debug`] follow field order: the order in which the keys
//!   were first inserted.
//! * [`Record::insert`] of a key the fields already have fills its slot; of a key they lack
//!   switches the record to the fields with that key appended. That switch goes through a
//!   cache in the old [`Fields`], so all records of one shape that gain the same key keep
//!   sharing one [`Fields`] (no copy of the names per record).
//! * [`Record::remove`] empties the slot: the key no longer counts in [`Record::len`],
//!   iteration or equality, and the other keys keep their relative order (like
//!   `IndexMap::shift_remove`, unlike `serde_json::Map::remove`, which swaps the last key
//!   into the hole).
//! * Inserting a removed key again puts it last, exactly like a map that removed and then
//!   re-inserted it: when keys after its slot are present, the record switches (through the
//!   same kind of cache) to fields in which that key is moved to the end.
//! * Equality compares the key → value pairs and ignores order, like `serde_json::Map`.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Index, IndexMut};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

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
    names: Vec<String>,
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

    fn from_unique(names: Vec<String>) -> Fields {
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
    fn position_from(&self, hint: usize, name: &str) -> Option<usize> {
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
    fn moved_to_end(self: &Arc<Self>, name: &str) -> Arc<Fields> {
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

/// The item type of jobs defined in YAML: an ordered map of field names to JSON values (a
/// CSV row, a JSON Lines object, ...), stored as a row of values over shared [`Fields`].
///
/// See the [module docs](self) for what is shared and how insertions and removals behave.
///
/// ```
/// use ikkatsu_core::Record;
/// use serde_json::json;
///
/// let mut record = Record::new();
/// record.insert("name".to_string(), json!("Ada"));
/// record.insert("born".to_string(), json!(1815));
/// assert_eq!(record["name"], json!("Ada"));
/// record.remove("name");
/// record.insert("name".to_string(), json!("Ada L."));
/// assert_eq!(
///     serde_json::to_string(&record).unwrap(),
///     r#"{"born":1815,"name":"Ada L."}"#
/// );
/// ```
#[derive(Clone)]
pub struct Record {
    fields: Arc<Fields>,
    /// One slot per field (same length as `fields`).
    slots: Vec<Slot>,
    /// The text that [`Slot::Text`] slots point into (a CSV row's fields, concatenated).
    text: String,
    /// The values made of [`Slot::Text`] slots read by reference, by slot position; made on
    /// the first such read. Reset before slots move (see [`Record::settle`]).
    refs: OnceLock<Box<[OnceLock<Value>]>>,
    /// The number of present keys.
    len: usize,
}

/// The value of one field of a [`Record`].
#[derive(Clone)]
enum Slot {
    /// The key is absent.
    Absent,
    /// A value.
    Value(Value),
    /// A string value still in the record's text, `text[start..end]`: made a [`Value`] only
    /// when it is read by reference (kept in `refs`) or taken.
    Text { start: u32, end: u32 },
}

impl Slot {
    fn is_present(&self) -> bool {
        !matches!(self, Slot::Absent)
    }
}

/// `text[start..end]`; the range was checked to be on character boundaries when the slot
/// was made.
fn text_of(text: &str, start: u32, end: u32) -> &str {
    text.get(start as usize..end as usize).unwrap_or_default()
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Record::with_fields(Fields::empty())
    }

    /// An empty record with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut record = Record::new();
        record.slots.reserve(capacity);
        record
    }

    fn from_parts(fields: Arc<Fields>, slots: Vec<Slot>, text: String, len: usize) -> Self {
        Record {
            fields,
            slots,
            text,
            refs: OnceLock::new(),
            len,
        }
    }

    /// An empty record over `fields` (no key present yet): inserting the keys of `fields` in
    /// their order fills the slots without changing the fields.
    pub fn with_fields(fields: Arc<Fields>) -> Self {
        let slots = (0..fields.len()).map(|_| Slot::Absent).collect();
        Record::from_parts(fields, slots, String::new(), 0)
    }

    /// A record over `fields` with `values` as its slots, in field order (`None`: the key is
    /// absent); missing trailing slots are absent. `None` when there are more values than
    /// fields.
    pub fn from_values(fields: Arc<Fields>, values: Vec<Option<Value>>) -> Option<Self> {
        if values.len() > fields.len() {
            return None;
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(fields.len());
        slots.extend(
            values
                .into_iter()
                .map(|value| value.map_or(Slot::Absent, Slot::Value)),
        );
        slots.resize_with(fields.len(), || Slot::Absent);
        let len = slots.iter().filter(|slot| slot.is_present()).count();
        Some(Record::from_parts(fields, slots, String::new(), len))
    }

    /// A record over `fields` whose values are strings in `text` (a row's fields, one after
    /// the other): `values` gives the slot of each and its byte range in `text`. The strings
    /// stay in `text` (one allocation for the whole row) until a value is read by
    /// reference, changed or taken. A slot given twice takes the last range; slots not
    /// given are absent.
    ///
    /// `None` when a slot is not one of the fields or a range is not within `text` on
    /// character boundaries.
    ///
    /// ```
    /// use ikkatsu_core::Record;
    /// use ikkatsu_core::record::Fields;
    ///
    /// let fields = Fields::new(["id", "city"]);
    /// let record = Record::from_text(fields, "7lyon".to_string(), [(0, 0..1), (1, 1..5)])
    ///     .unwrap();
    /// assert_eq!(record["city"], "lyon");
    /// ```
    pub fn from_text(
        fields: Arc<Fields>,
        text: String,
        values: impl IntoIterator<Item = (usize, std::ops::Range<usize>)>,
    ) -> Option<Self> {
        let count = fields.len();
        let mut slots: Vec<Slot> = Vec::with_capacity(count);
        let mut len = 0;
        for (position, range) in values {
            let value = text.get(range.clone())?;
            let slot = match (u32::try_from(range.start), u32::try_from(range.end)) {
                (Ok(start), Ok(end)) => Slot::Text { start, end },
                _ => Slot::Value(Value::String(value.to_owned())),
            };
            if position == slots.len() && position < count {
                // Slots given in order (the usual case): no slot to fill in.
                slots.push(slot);
                len += 1;
                continue;
            }
            if position >= count {
                return None;
            }
            if slots.len() <= position {
                slots.resize_with(position + 1, || Slot::Absent);
            }
            if !slots[position].is_present() {
                len += 1;
            }
            slots[position] = slot;
        }
        slots.resize_with(count, || Slot::Absent);
        Some(Record::from_parts(fields, slots, text, len))
    }

    /// The fields this record is laid out on (which may include absent keys).
    pub fn fields(&self) -> &Arc<Fields> {
        &self.fields
    }

    /// The value at `position` of [`Record::fields`] (`None`: absent or out of range).
    pub fn get_at(&self, position: usize) -> Option<&Value> {
        match self.slots.get(position)? {
            Slot::Absent => None,
            Slot::Value(value) => Some(value),
            &Slot::Text { start, end } => {
                let refs = self
                    .refs
                    .get_or_init(|| (0..self.slots.len()).map(|_| OnceLock::new()).collect());
                Some(
                    refs.get(position)?
                        .get_or_init(|| Value::String(text_of(&self.text, start, end).to_owned())),
                )
            }
        }
    }

    /// The value at `position` of [`Record::fields`] when it is a string, without making a
    /// [`Value`] of a string still in the record's text.
    pub fn str_at(&self, position: usize) -> Option<&str> {
        match self.slots.get(position)? {
            Slot::Value(Value::String(value)) => Some(value),
            &Slot::Text { start, end } => Some(text_of(&self.text, start, end)),
            Slot::Absent | Slot::Value(_) => None,
        }
    }

    /// Empties the slot at `position`; returns its value.
    fn take_at(&mut self, position: usize) -> Option<Value> {
        match std::mem::replace(&mut self.slots[position], Slot::Absent) {
            Slot::Absent => None,
            Slot::Value(value) => Some(value),
            Slot::Text { start, end } => Some(
                self.refs
                    .get_mut()
                    .and_then(|refs| refs.get_mut(position))
                    .and_then(OnceLock::take)
                    .unwrap_or_else(|| Value::String(text_of(&self.text, start, end).to_owned())),
            ),
        }
    }

    /// The value at `position`, mutable (a string in the text becomes a [`Value`]).
    fn get_mut_at(&mut self, position: usize) -> Option<&mut Value> {
        if let Slot::Text { .. } = self.slots[position] {
            let value = self.take_at(position);
            self.slots[position] = value.map_or(Slot::Absent, Slot::Value);
        }
        match &mut self.slots[position] {
            Slot::Value(value) => Some(value),
            Slot::Absent | Slot::Text { .. } => None,
        }
    }

    /// Makes a [`Value`] of every string still in the record's text, so slots may move.
    fn settle(&mut self) {
        for position in 0..self.slots.len() {
            if let Slot::Text { .. } = self.slots[position] {
                self.get_mut_at(position);
            }
        }
        self.refs = OnceLock::new();
    }

    /// The number of keys present.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every key (the fields stay, all slots become absent).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = Slot::Absent);
        self.text.clear();
        self.refs = OnceLock::new();
        self.len = 0;
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_at(self.fields.position(key)?)
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let position = self.fields.position(key)?;
        self.get_mut_at(position)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.fields
            .position(key)
            .is_some_and(|position| self.slots[position].is_present())
    }

    /// Sets `key` to `value`; returns the value it replaces. A new key goes last.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        self.insert_at(None, &key, value)
    }

    /// [`insert`](Record::insert) with a borrowed key: no key is allocated unless the fields
    /// lack it.
    pub fn set(&mut self, key: &str, value: Value) -> Option<Value> {
        self.insert_at(None, key, value)
    }

    /// [`insert`](Record::insert) with the key's position in the fields tried first.
    fn insert_at(&mut self, hint: Option<usize>, key: &str, value: Value) -> Option<Value> {
        let position = match hint {
            Some(hint) => self.fields.position_from(hint, key),
            None => self.fields.position(key),
        };
        let Some(position) = position else {
            self.fields = self.fields.appended(key);
            self.slots.push(Slot::Value(value));
            self.len += 1;
            return None;
        };
        if self.slots[position].is_present() {
            let old = self.take_at(position);
            self.slots[position] = Slot::Value(value);
            return old;
        }
        if self.slots[position + 1..].iter().any(Slot::is_present) {
            self.settle();
            self.fields = self.fields.moved_to_end(key);
            self.slots.remove(position);
            self.slots.push(Slot::Value(value));
        } else {
            self.slots[position] = Slot::Value(value);
        }
        self.len += 1;
        None
    }

    /// Removes `key`; returns its value. The other keys keep their order.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let position = self.fields.position(key)?;
        let value = self.take_at(position)?;
        self.len -= 1;
        Some(value)
    }

    /// The same as [`remove`](Record::remove) (the order of the other keys is kept).
    pub fn shift_remove(&mut self, key: &str) -> Option<Value> {
        self.remove(key)
    }

    /// Keeps only the keys for which `keep` returns `true`.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Value) -> bool) {
        self.settle();
        for (name, slot) in self.fields.names.iter().zip(self.slots.iter_mut()) {
            if let Slot::Value(value) = slot
                && !keep(name, value)
            {
                *slot = Slot::Absent;
                self.len -= 1;
            }
        }
    }

    /// The keys and values, in field order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            record: self,
            front: 0,
            back: self.slots.len(),
            remaining: self.len,
        }
    }

    /// The keys and mutable values, in field order.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        self.settle();
        IterMut {
            names: self.fields.names.iter(),
            slots: self.slots.iter_mut(),
            remaining: self.len,
        }
    }

    /// The keys, in field order.
    pub fn keys(&self) -> Keys<'_> {
        Keys { inner: self.iter() }
    }

    /// The values, in field order.
    pub fn values(&self) -> Values<'_> {
        Values { inner: self.iter() }
    }

    /// The values, mutable, in field order.
    pub fn values_mut(&mut self) -> ValuesMut<'_> {
        ValuesMut {
            inner: self.iter_mut(),
        }
    }
}

impl Default for Record {
    fn default() -> Self {
        Record::new()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        if Arc::ptr_eq(&self.fields, &other.fields) {
            return (0..self.slots.len()).all(|position| {
                match (self.str_at(position), other.str_at(position)) {
                    (Some(a), Some(b)) => a == b,
                    _ => self.get_at(position) == other.get_at(position),
                }
            });
        }
        self.iter()
            .all(|(key, value)| other.get(key) == Some(value))
    }
}

impl Eq for Record {}

impl Index<&str> for Record {
    type Output = Value;

    /// The value of `key`; panics when it is absent (like `serde_json::Map`).
    fn index(&self, key: &str) -> &Value {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no key `{key}` in the record"),
        }
    }
}

impl IndexMut<&str> for Record {
    /// The value of `key`; panics when it is absent (like `serde_json::Map`).
    fn index_mut(&mut self, key: &str) -> &mut Value {
        match self.get_mut(key) {
            Some(value) => value,
            None => panic!("no key `{key}` in the record"),
        }
    }
}
/// The keys and values of a [`Record`], in field order.
#[derive(Clone)]
pub struct Iter<'a> {
    record: &'a Record,
    /// The slot positions not visited yet: `front..back`.
    front: usize,
    back: usize,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            let position = self.front;
            self.front += 1;
            if let Some(value) = self.record.get_at(position) {
                self.remaining -= 1;
                return Some((&self.record.fields.names[position], value));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            self.back -= 1;
            let position = self.back;
            if let Some(value) = self.record.get_at(position) {
                self.remaining -= 1;
                return Some((&self.record.fields.names[position], value));
            }
        }
        None
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The keys and mutable values of a [`Record`], in field order.
pub struct IterMut<'a> {
    names: std::slice::Iter<'a, String>,
    /// Slots without text (see [`Record::iter_mut`]).
    slots: std::slice::IterMut<'a, Slot>,
    remaining: usize,
}

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a String, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let name = self.names.next()?;
            if let Slot::Value(value) = self.slots.next()? {
                self.remaining -= 1;
                return Some((name, value));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            let name = self.names.next_back()?;
            if let Slot::Value(value) = self.slots.next_back()? {
                self.remaining -= 1;
                return Some((name, value));
            }
        }
    }
}

impl ExactSizeIterator for IterMut<'_> {}

/// An iterator that yields one half of each pair of another iterator of a [`Record`].
macro_rules! projection {
    ($(#[$meta:meta])* $name:ident, $inner:ident, $item:ty, $pick:expr) => {
        $(#[$meta])*
        pub struct $name<'a> {
            inner: $inner<'a>,
        }

        impl<'a> Iterator for $name<'a> {
            type Item = $item;

            fn next(&mut self) -> Option<Self::Item> {
                self.inner.next().map($pick)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.inner.size_hint()
            }
        }

        impl DoubleEndedIterator for $name<'_> {
            fn next_back(&mut self) -> Option<Self::Item> {
                self.inner.next_back().map($pick)
            }
        }

        impl ExactSizeIterator for $name<'_> {}
    };
}

projection!(
    /// The keys of a [`Record`], in field order.
    #[derive(Clone)]
    Keys, Iter, &'a String, |(key, _)| key
);
projection!(
    /// The values of a [`Record`], in field order.
    #[derive(Clone)]
    Values, Iter, &'a Value, |(_, value)| value
);
projection!(
    /// The mutable values of a [`Record`], in field order.
    ValuesMut, IterMut, &'a mut Value, |(_, value)| value
);

/// The keys and values of a [`Record`], owned, in field order (the keys are copied from the
/// shared [`Fields`]).
pub struct IntoIter {
    record: Record,
    /// The slot positions not visited yet: `front..back`.
    front: usize,
    back: usize,
}

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            let position = self.front;
            self.front += 1;
            if let Some(value) = self.record.take_at(position) {
                self.record.len -= 1;
                return Some((self.record.fields.names[position].clone(), value));
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.record.len, Some(self.record.len))
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        while self.front < self.back {
            self.back -= 1;
            let position = self.back;
            if let Some(value) = self.record.take_at(position) {
                self.record.len -= 1;
                return Some((self.record.fields.names[position].clone(), value));
            }
        }
        None
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for Record {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter {
            front: 0,
            back: self.slots.len(),
            record: self,
        }
    }
}

impl<'a> IntoIterator for &'a Record {
    type Item = (&'a String, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Record {
    type Item = (&'a String, &'a mut Value);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

impl FromIterator<(String, Value)> for Record {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut record = Record::new();
        record.extend(iter);
        record
    }
}

impl Extend<(String, Value)> for Record {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl From<serde_json::Map<String, Value>> for Record {
    fn from(map: serde_json::Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

impl From<Record> for serde_json::Map<String, Value> {
    fn from(record: Record) -> Self {
        record.into_iter().collect()
    }
}

impl From<Record> for Value {
    fn from(record: Record) -> Self {
        Value::Object(record.into())
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (position, name) in self.fields.names.iter().enumerate() {
            // A string still in the text is written as it is, without making a `Value`.
            match self.str_at(position) {
                Some(text) => map.serialize_entry(name, text)?,
                None => {
                    if let Some(value) = self.get_at(position) {
                        map.serialize_entry(name, value)?;
                    }
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RecordSeed::new(&Fields::empty()).deserialize(deserializer)
    }
}

/// Deserializes a [`Record`] laid out on given [`Fields`] (a JSON object is read into their
/// slots): a reader passes the fields of the previous record, so objects of the same shape
/// share one [`Fields`] and their keys are neither allocated nor hashed.
///
/// ```
/// use ikkatsu_core::record::{Fields, RecordSeed};
/// use serde::de::DeserializeSeed;
///
/// let fields = Fields::new(["a", "b"]);
/// let mut json = serde_json::Deserializer::from_str(r#"{"a": 1, "b": 2}"#);
/// let record = RecordSeed::new(&fields).deserialize(&mut json).unwrap();
/// assert!(std::sync::Arc::ptr_eq(record.fields(), &fields));
/// ```
pub struct RecordSeed<'a> {
    fields: &'a Arc<Fields>,
}

impl<'a> RecordSeed<'a> {
    /// A seed that starts every record on `fields`.
    pub fn new(fields: &'a Arc<Fields>) -> Self {
        RecordSeed { fields }
    }
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Record;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Record, D::Error> {
        deserializer.deserialize_map(RecordVisitor {
            fields: self.fields,
        })
    }
}

struct RecordVisitor<'a> {
    fields: &'a Arc<Fields>,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = Record;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Record, E> {
        Ok(Record::with_fields(Arc::clone(self.fields)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut record = Record::with_fields(Arc::clone(self.fields));
        let mut hint = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: Value = map.next_value()?;
            record.insert_at(Some(hint), &key, value);
            hint += 1;
        }
        Ok(record)
    }
}

/// The fields a reader lays the next record on: those of the records it read before, so
/// the records of a file (objects with the same keys) share one [`Fields`].
///
/// ```
/// use ikkatsu_core::record::SharedFields;
///
/// let mut shared = SharedFields::new();
/// let first = shared.from_slice(br#"{"a": 1, "b": 2}"#).unwrap();
/// let second = shared.from_slice(br#"{"a": 3, "b": 4}"#).unwrap();
/// assert!(std::sync::Arc::ptr_eq(first.fields(), second.fields()));
/// ```
#[derive(Debug, Clone)]
pub struct SharedFields {
    fields: Arc<Fields>,
}

impl SharedFields {
    /// Starts with no fields.
    pub fn new() -> Self {
        SharedFields {
            fields: Fields::empty(),
        }
    }

    /// The fields the next record starts from.
    pub fn fields(&self) -> &Arc<Fields> {
        &self.fields
    }

    /// A seed deserializing the next record on the current fields; pass the record to
    /// [`learn`](SharedFields::learn) afterwards.
    pub fn seed(&self) -> RecordSeed<'_> {
        RecordSeed::new(&self.fields)
    }

    /// Takes the fields of `record` for the next records. Fields with many more names than
    /// the record has keys (objects whose keys keep changing) are not kept: the next record
    /// starts afresh, so the fields do not grow with the input.
    pub fn learn(&mut self, record: &Record) {
        let fields = record.fields();
        if Arc::ptr_eq(fields, &self.fields) {
            return;
        }
        self.fields = if fields.len() <= 2 * record.len() + 8 {
            Arc::clone(fields)
        } else {
            Fields::empty()
        };
    }

    /// Parses a JSON object into a record on the current fields and learns its fields.
    pub fn from_slice(&mut self, json: &[u8]) -> serde_json::Result<Record> {
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let record = self.seed().deserialize(&mut deserializer)?;
        deserializer.end()?;
        self.learn(&record);
        Ok(record)
    }
}

impl Default for SharedFields {
    fn default() -> Self {
        SharedFields::new()
    }
}

/// A map key, borrowed from the input when possible.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(key))
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, key: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use serde_json::json;

    type Map = serde_json::Map<String, Value>;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, i64),
        Remove(String),
        Get(String),
        GetMut(String, i64),
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(str::to_owned)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (key(), any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key().prop_map(Op::Remove),
            key().prop_map(Op::Get),
            (key(), any::<i64>()).prop_map(|(k, v)| Op::GetMut(k, v)),
        ]
    }

    /// Applies `op` to both; returns what each returned.
    fn apply(record: &mut Record, map: &mut Map, op: &Op) -> (Option<Value>, Option<Value>) {
        match op {
            Op::Insert(k, v) => (
                record.insert(k.clone(), json!(v)),
                map.insert(k.clone(), json!(v)),
            ),
            Op::Remove(k) => (record.remove(k), map.shift_remove(k)),
            Op::Get(k) => (record.get(k).cloned(), map.get(k).cloned()),
            Op::GetMut(k, v) => {
                let a = record
                    .get_mut(k)
                    .map(|slot| std::mem::replace(slot, json!(v)));
                let b = map.get_mut(k).map(|slot| std::mem::replace(slot, json!(v)));
                (a, b)
            }
        }
    }

    fn assert_same(record: &Record, map: &Map) {
        assert_eq!(record.len(), map.len());
        assert_eq!(record.is_empty(), map.is_empty());
        let entries: Vec<(&String, &Value)> = record.iter().collect();
        assert_eq!(entries, map.iter().collect::<Vec<_>>());
        assert_eq!(
            record.keys().collect::<Vec<_>>(),
            map.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            record.iter().rev().collect::<Vec<_>>(),
            map.iter().rev().collect::<Vec<_>>()
        );
        assert_eq!(
            serde_json::to_string(record).unwrap(),
            serde_json::to_string(map).unwrap()
        );
        assert_eq!(&Map::from(record.clone()), map);
        assert_eq!(record, &Record::from(map.clone()));
        for key in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(record.contains_key(key), map.contains_key(key));
        }
    }

    /// Applies `ops` to both, checking after each that they still agree.
    fn replay(record: &mut Record, map: &mut Map, ops: &[Op]) -> Result<(), TestCaseError> {
        for op in ops {
            let (a, b) = apply(record, map, op);
            prop_assert_eq!(a, b, "{:?}", op);
            assert_same(record, map);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn behaves_like_an_ordered_map(ops in prop::collection::vec(op(), 0..40)) {
            let mut record = Record::new();
            let mut map = Map::new();
            replay(&mut record, &mut map, &ops)?;
        }

        #[test]
        fn behaves_like_an_ordered_map_from_shared_fields(
            ops in prop::collection::vec(op(), 0..40),
        ) {
            // Starting on fields that already name some keys (absent) must not change
            // anything observable.
            let mut record = Record::with_fields(Fields::new(["c", "a", "f"]));
            let mut map = Map::new();
            replay(&mut record, &mut map, &ops)?;
        }

        #[test]
        fn behaves_like_an_ordered_map_from_text(
            ops in prop::collection::vec(op(), 0..40),
            touched in prop::collection::vec(key(), 0..4),
        ) {
            // Values still in the row's text behave like the strings they hold, before and
            // after being read by reference (which makes a `Value` of them).
            let fields = Fields::new(["b", "e", "a", "c"]);
            let text = "xxyyzzé".to_string();
            let mut record =
                Record::from_text(fields, text, [(0, 0..2), (1, 2..4), (3, 4..6), (2, 6..8)])
                    .unwrap();
            let mut map = Map::new();
            for (key, value) in [("b", "xx"), ("e", "yy"), ("a", "é"), ("c", "zz")] {
                map.insert(key.to_string(), json!(value));
            }
            for key in &touched {
                prop_assert_eq!(record.get(key), map.get(key));
            }
            assert_same(&record, &map);
            let copy = record.clone();
            replay(&mut record, &mut map, &ops)?;
            prop_assert_eq!(copy.len(), 4);
        }

        #[test]
        fn deserializes_like_a_map(
            entries in prop::collection::vec((key(), any::<i64>()), 0..10),
            template in prop::collection::vec(key(), 0..6),
        ) {
            let text = format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let map: Map = serde_json::from_str(&text).unwrap();
            let fields = Fields::new(template);
            let mut json = serde_json::Deserializer::from_str(&text);
            let record = RecordSeed::new(&fields).deserialize(&mut json).unwrap();
            assert_same(&record, &map);
            let plain: Record = serde_json::from_str(&text).unwrap();
            assert_same(&plain, &map);
        }
    }

    #[test]
    fn records_of_one_shape_share_their_fields_when_a_key_is_added() {
        let fields = Fields::new(["id", "city"]);
        let mut records: Vec<Record> = (0..100)
            .map(|n| {
                Record::from_values(
                    Arc::clone(&fields),
                    vec![Some(json!(n)), Some(json!("lyon"))],
                )
                .unwrap()
            })
            .collect();
        for record in &mut records {
            assert_eq!(record.insert("country".to_string(), json!("FR")), None);
        }
        let first = Arc::clone(records[0].fields());
        assert!(!Arc::ptr_eq(&first, &fields));
        assert_eq!(first.names(), ["id", "city", "country"]);
        assert!(records.iter().all(|r| Arc::ptr_eq(r.fields(), &first)));

        // Removing and re-inserting a key moves it last, shared as well.
        for (n, record) in records.iter_mut().enumerate() {
            assert_eq!(record.remove("id"), Some(json!(n)));
            assert_eq!(record.remove("id"), None);
        }
        for (n, record) in records.iter_mut().enumerate() {
            record.insert("id".to_string(), json!(n));
        }
        let moved = Arc::clone(records[0].fields());
        assert_eq!(moved.names(), ["city", "country", "id"]);
        assert!(records.iter().all(|r| Arc::ptr_eq(r.fields(), &moved)));
        assert_eq!(
            serde_json::to_string(&records[7]).unwrap(),
            r#"{"city":"lyon","country":"FR","id":7}"#
        );
    }

    #[test]
    fn records_built_key_by_key_share_their_fields() {
        let build = |n: i64| {
            let mut record = Record::new();
            record.insert("n".to_string(), json!(n));
            record.insert("square".to_string(), json!(n * n));
            record
        };
        let (a, b) = (build(2), build(3));
        assert!(Arc::ptr_eq(a.fields(), b.fields()));
        assert_ne!(a, b);
        assert_eq!(a, build(2));
    }

    #[test]
    fn equality_ignores_order() {
        let a: Record = [("x".to_string(), json!(1)), ("y".to_string(), json!(2))]
            .into_iter()
            .collect();
        let b: Record = [("y".to_string(), json!(2)), ("x".to_string(), json!(1))]
            .into_iter()
            .collect();
        assert_eq!(a, b);
        let mut c = b.clone();
        c.insert("z".to_string(), Value::Null);
        assert_ne!(a, c);
        c.remove("z");
        assert_eq!(a, c);
    }

    #[test]
    fn many_fields_are_found_through_the_index() {
        let names: Vec<String> = (0..40).map(|n| format!("f{n}")).collect();
        let fields = Fields::new(names.iter().cloned().chain(["f3".to_string()]));
        assert_eq!(fields.len(), 40);
        for (position, name) in names.iter().enumerate() {
            assert_eq!(fields.position(name), Some(position));
        }
        assert_eq!(fields.position("f40"), None);
        let mut record = Record::with_fields(Arc::clone(&fields));
        for (n, name) in names.iter().enumerate().rev() {
            record.insert(name.clone(), json!(n));
        }
        assert_eq!(record.len(), 40);
        assert_eq!(record["f17"], json!(17));
        assert_eq!(record.keys().next().map(String::as_str), Some("f39"));
    }

    #[test]
    fn from_text_checks_slots_and_ranges() {
        let fields = Fields::new(["a", "b"]);
        let text = || "héllo".to_string();
        assert!(Record::from_text(Arc::clone(&fields), text(), [(2, 0..1)]).is_none());
        assert!(Record::from_text(Arc::clone(&fields), text(), [(0, 0..9)]).is_none());
        // Not a character boundary.
        assert!(Record::from_text(Arc::clone(&fields), text(), [(0, 0..2)]).is_none());
        let mut record = Record::from_text(fields, text(), [(1, 0..3), (0, 3..6)]).unwrap();
        assert_eq!(record.str_at(1), Some("hé"));
        assert_eq!(record.str_at(2), None);
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            r#"{"a":"llo","b":"hé"}"#
        );
        // Read by reference, then moved: the value read stays the same.
        let mut moved = record.clone();
        assert_eq!(moved.get("a"), Some(&json!("llo")));
        assert_eq!(moved.remove("b"), Some(json!("hé")));
        moved.insert("c".to_string(), json!(1));
        moved.insert("b".to_string(), json!(2));
        assert_eq!(moved.remove("a"), Some(json!("llo")));
        moved.insert("a".to_string(), json!(3));
        assert_eq!(
            serde_json::to_string(&moved).unwrap(),
            r#"{"c":1,"b":2,"a":3}"#
        );
        *record.get_mut("b").unwrap() = json!(5);
        assert_eq!(record.str_at(1), None);
        assert_eq!(record.get_at(1), Some(&json!(5)));
        assert_eq!(record.iter_mut().count(), 2);
        assert_eq!(
            record.into_iter().collect::<Vec<_>>(),
            [("a".to_string(), json!("llo")), ("b".to_string(), json!(5))]
        );
    }

    #[test]
    fn from_values_rejects_more_values_than_fields() {
        let fields = Fields::new(["a"]);
        assert!(Record::from_values(Arc::clone(&fields), vec![None, None]).is_none());
        let record = Record::from_values(fields, vec![]).unwrap();
        assert!(record.is_empty());
        assert_eq!(format!("{record:?}"), "{}");
    }

    #[test]
    fn debug_shows_a_map() {
        let record: Record = [("a".to_string(), json!(1))].into_iter().collect();
        assert_eq!(format!("{record:?}"), r#"{"a": Number(1)}"#);
        assert_eq!(Value::from(record), json!({"a": 1}));
    }

    #[test]
    fn shared_fields_do_not_grow_with_changing_keys() {
        let mut shared = SharedFields::new();
        for n in 0..200 {
            let record = shared
                .from_slice(format!(r#"{{"id":{n},"k{n}":true}}"#).as_bytes())
                .unwrap();
            assert_eq!(record.len(), 2);
            assert!(record.fields().len() <= 2 * 2 + 8 + 2);
        }
        assert!(shared.fields().len() <= 12);
        let first = shared.from_slice(br#"{"a":1,"b":2}"#).unwrap();
        let second = shared.from_slice(br#"{"a":3,"b":4}"#).unwrap();
        assert!(Arc::ptr_eq(first.fields(), second.fields()));
        assert!(shared.from_slice(b"[1]").is_err());
    }
}
