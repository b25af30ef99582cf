//! The iterators over a [`Record`] and its conversions from and into maps and pairs.

use serde_json::Value;

use super::{Record, Slot};

/// The keys and values of a [`Record`], in field order.
#[derive(Clone)]
pub struct Iter<'a> {
    pub(super) record: &'a Record,
    /// The slot positions not visited yet: `front..back`.
    pub(super) front: usize,
    pub(super) back: usize,
    pub(super) remaining: usize,
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
    pub(super) names: std::slice::Iter<'a, String>,
    /// Slots without text (see [`Record::iter_mut`]).
    pub(super) slots: std::slice::IterMut<'a, Slot>,
    pub(super) remaining: usize,
}

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a String, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let name = self.names.next()?;
            if let Slot::Value(value) = self.slots.next()? {
                self.remaining -= 1;
                return Some((name, &mut **value));
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
                return Some((name, &mut **value));
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
            pub(super) inner: $inner<'a>,
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
    pub(super) record: Record,
    /// The slot positions not visited yet: `front..back`.
    pub(super) front: usize,
    pub(super) back: usize,
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
