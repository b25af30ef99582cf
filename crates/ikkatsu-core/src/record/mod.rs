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

mod fields;
mod iter;
mod serialization;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::{Index, IndexMut};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub use fields::Fields;
pub use iter::{IntoIter, Iter, IterMut, Keys, Values, ValuesMut};
pub use serialization::{RecordSeed, SharedFields};

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
    /// A value, boxed: a slot stays 16 bytes (a `Value` is 72 with ordered maps), so the
    /// slots of records read from text, which are all `Text`, are small and cheap to make.
    Value(Box<Value>),
    /// A string value still in the record's text, `text[start..end]`: made a [`Value`] only
    /// when it is read by reference (kept in `refs`) or taken.
    Text { start: u32, end: u32 },
}

impl Slot {
    fn value(value: Value) -> Slot {
        Slot::Value(Box::new(value))
    }

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
                .map(|value| value.map_or(Slot::Absent, Slot::value)),
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
                _ => Slot::value(Value::String(value.to_owned())),
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
            Slot::Value(value) => Some(&**value),
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
            Slot::Value(value) => value.as_str(),
            &Slot::Text { start, end } => Some(text_of(&self.text, start, end)),
            Slot::Absent => None,
        }
    }

    /// Empties the slot at `position`; returns its value.
    fn take_at(&mut self, position: usize) -> Option<Value> {
        match std::mem::replace(&mut self.slots[position], Slot::Absent) {
            Slot::Absent => None,
            Slot::Value(value) => Some(*value),
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
            self.slots[position] = value.map_or(Slot::Absent, Slot::value);
        }
        match &mut self.slots[position] {
            Slot::Value(value) => Some(&mut **value),
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
            self.slots.push(Slot::value(value));
            self.len += 1;
            return None;
        };
        if self.slots[position].is_present() {
            let old = self.take_at(position);
            self.slots[position] = Slot::value(value);
            return old;
        }
        if self.slots[position + 1..].iter().any(Slot::is_present) {
            self.settle();
            self.fields = self.fields.moved_to_end(key);
            self.slots.remove(position);
            self.slots.push(Slot::value(value));
        } else {
            self.slots[position] = Slot::value(value);
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
