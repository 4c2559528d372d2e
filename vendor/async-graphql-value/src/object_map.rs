//! An object value's fields, in order: a `Vec` of name and value, given an index by name
//! only once it holds more than a few.
//!
//! Nearly every object an answer holds has a handful of fields, each inserted once and read
//! once, in order, when the answer is written. An `IndexMap` hashed every key and kept a
//! hash table beside its entries, one more allocation per object; on a page of 50 users
//! with 10 posts each, those maps were a tenth of the request's instructions. Here a small
//! map is searched by comparing names, and a map that grows past [`INDEXED_FROM`] fields (a
//! client's variables can hold thousands) builds a hash index, so a lookup stays constant
//! time however large the map.

use std::{
    borrow::Borrow,
    fmt,
    hash::{BuildHasher, Hash},
    iter::FusedIterator,
    ops::{Index, IndexMut},
    slice, vec,
};

use hashbrown::HashTable;
use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::{Name, ObjectHasher};

/// Fields beyond which a map keeps a hash index of its names.
const INDEXED_FROM: usize = 16;

/// The fields of an object value by name, in insertion order.
///
/// Its methods are those of the `IndexMap` it replaces, with the same meaning: `insert`
/// on a name already present replaces the value in place, `shift_remove` keeps the order
/// of the rest, and two maps are equal when they hold the same names with equal values,
/// whatever their order.
pub struct ObjectMap<V> {
    entries: Vec<(Name, V)>,
    /// Each entry's position, by its name's hash; only for a map of [`INDEXED_FROM`]
    /// fields or more.
    index: Option<Box<NameIndex>>,
}

struct NameIndex {
    table: HashTable<usize>,
    hasher: ObjectHasher,
}

impl NameIndex {
    fn build<V>(entries: &[(Name, V)]) -> Box<Self> {
        let hasher = ObjectHasher::default();
        let mut table = HashTable::with_capacity(entries.len());
        for (position, (name, _)) in entries.iter().enumerate() {
            let hash = hasher.hash_one(name.as_str());
            table.insert_unique(hash, position, |&p| hasher.hash_one(entries[p].0.as_str()));
        }
        Box::new(Self { table, hasher })
    }
}

impl<V> ObjectMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self { entries: Vec::new(), index: None }
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { entries: Vec::with_capacity(capacity), index: None }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes room for `additional` more fields.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// Removes every field.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index = None;
    }

    /// The position of the field named `key`. Inlined: every field of every answer is
    /// looked for once in its object's map before it goes in (2,700 times on q1), and the
    /// call cost more than the search of a small map.
    #[inline(always)]
    pub fn get_index_of<Q>(&self, key: &Q) -> Option<usize>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        match &self.index {
            Some(index) => self.find_indexed(index, key),
            None => self.entries.iter().position(|(name, _)| name.borrow() == key),
        }
    }

    /// The position of the field named `key`, through the index of a large map.
    #[inline(never)]
    fn find_indexed<Q>(&self, index: &NameIndex, key: &Q) -> Option<usize>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let hash = index.hasher.hash_one(key);
        index.table.find(hash, |&p| self.entries[p].0.borrow() == key).copied()
    }

    /// The value of the field named `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.get_index_of(key).map(|p| &self.entries[p].1)
    }

    /// The value of the field named `key`, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.get_index_of(key).map(|p| &mut self.entries[p].1)
    }

    /// Whether a field is named `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.get_index_of(key).is_some()
    }

    /// The field at `position`.
    pub fn get_index(&self, position: usize) -> Option<(&Name, &V)> {
        self.entries.get(position).map(|(name, value)| (name, value))
    }

    /// The first field.
    pub fn first(&self) -> Option<(&Name, &V)> {
        self.get_index(0)
    }

    /// Sets the field `key` to `value`: in place, returning the value it had, when the map
    /// has it; at the end otherwise.
    pub fn insert(&mut self, key: Name, value: V) -> Option<V> {
        match self.get_index_of(key.as_str()) {
            Some(p) => Some(std::mem::replace(&mut self.entries[p].1, value)),
            None => {
                self.push(key, value);
                None
            }
        }
    }

    /// Appends a field the map does not have. Inlined, as `get_index_of` is.
    #[inline(always)]
    fn push(&mut self, key: Name, value: V) {
        if self.index.is_some() || self.entries.len() + 1 >= INDEXED_FROM {
            return self.push_indexed(key, value);
        }
        self.entries.push((key, value));
    }

    /// Appends a field to a map that has an index, or that reaches the size to have one.
    #[inline(never)]
    fn push_indexed(&mut self, key: Name, value: V) {
        let position = self.entries.len();
        if let Some(index) = &mut self.index {
            let hash = index.hasher.hash_one(key.as_str());
            let (entries, hasher) = (&self.entries, &index.hasher);
            index.table.insert_unique(hash, position, |&p| hasher.hash_one(entries[p].0.as_str()));
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() >= INDEXED_FROM {
            self.index = Some(NameIndex::build(&self.entries));
        }
    }

    /// The field named `key`, present or not, to read, insert or change.
    #[inline(always)]
    pub fn entry(&mut self, key: Name) -> Entry<'_, V> {
        match self.get_index_of(key.as_str()) {
            Some(position) => Entry::Occupied(OccupiedEntry { map: self, position }),
            None => Entry::Vacant(VacantEntry { map: self, key }),
        }
    }

    /// Removes the field named `key`, keeping the others in order, and returns its value.
    pub fn shift_remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let position = self.get_index_of(key)?;
        Some(self.remove_at(position).1)
    }

    /// Removes the field named `key`, putting the last field in its place, and returns its
    /// value.
    pub fn swap_remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let position = self.get_index_of(key)?;
        let (_, value) = self.entries.swap_remove(position);
        self.reindex();
        Some(value)
    }

    /// Removes the field named `key` and returns its value (as `IndexMap::remove`, which
    /// swaps the last field into its place).
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        Name: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        self.swap_remove(key)
    }

    fn remove_at(&mut self, position: usize) -> (Name, V) {
        let removed = self.entries.remove(position);
        self.reindex();
        removed
    }

    /// Keeps only the fields `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Name, &mut V) -> bool) {
        self.entries.retain_mut(|(name, value)| keep(name, value));
        self.reindex();
    }

    /// Rebuilds the index after positions changed.
    fn reindex(&mut self) {
        self.index = (self.entries.len() >= INDEXED_FROM).then(|| NameIndex::build(&self.entries));
    }

    /// The fields, in order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter(self.entries.iter())
    }

    /// The fields, in order, their values to change.
    pub fn iter_mut(&mut self) -> IterMut<'_, V> {
        IterMut(self.entries.iter_mut())
    }

    /// The names, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Name> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(name, _)| name)
    }

    /// The values, in order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, value)| value)
    }

    /// The values, in order, to change.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, value)| value)
    }
}

impl<V> Default for ObjectMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> Clone for ObjectMap<V> {
    fn clone(&self) -> Self {
        let mut map = Self { entries: self.entries.clone(), index: None };
        map.reindex();
        map
    }
}

impl<V: fmt::Debug> fmt::Debug for ObjectMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: PartialEq> PartialEq for ObjectMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.iter().all(|(name, value)| other.get(name.as_str()) == Some(value))
    }
}

impl<V: Eq> Eq for ObjectMap<V> {}

impl<V, Q> Index<&Q> for ObjectMap<V>
where
    Name: Borrow<Q>,
    Q: ?Sized + Hash + Eq,
{
    type Output = V;

    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("ObjectMap: key not found")
    }
}

impl<V> Index<usize> for ObjectMap<V> {
    type Output = V;

    fn index(&self, position: usize) -> &V {
        &self.entries[position].1
    }
}

impl<V> IndexMut<usize> for ObjectMap<V> {
    fn index_mut(&mut self, position: usize) -> &mut V {
        &mut self.entries[position].1
    }
}

impl<V> Extend<(Name, V)> for ObjectMap<V> {
    fn extend<I: IntoIterator<Item = (Name, V)>>(&mut self, fields: I) {
        let fields = fields.into_iter();
        self.reserve(fields.size_hint().0);
        for (name, value) in fields {
            self.insert(name, value);
        }
    }
}

impl<V> FromIterator<(Name, V)> for ObjectMap<V> {
    fn from_iter<I: IntoIterator<Item = (Name, V)>>(fields: I) -> Self {
        let mut map = Self::new();
        map.extend(fields);
        map
    }
}

impl<V: Serialize> Serialize for ObjectMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The fields of an [`ObjectMap`], in order.
#[derive(Clone)]
pub struct Iter<'a, V>(slice::Iter<'a, (Name, V)>);

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a Name, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, value)| (name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(name, value)| (name, value))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}
impl<V> FusedIterator for Iter<'_, V> {}

/// The fields of an [`ObjectMap`], in order, their values to change.
pub struct IterMut<'a, V>(slice::IterMut<'a, (Name, V)>);

impl<'a, V> Iterator for IterMut<'a, V> {
    type Item = (&'a Name, &'a mut V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, value)| (&*name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for IterMut<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(name, value)| (&*name, value))
    }
}

impl<V> ExactSizeIterator for IterMut<'_, V> {}
impl<V> FusedIterator for IterMut<'_, V> {}

/// The fields of an [`ObjectMap`], in order, taken.
pub struct IntoIter<V>(vec::IntoIter<(Name, V)>);

impl<V> Iterator for IntoIter<V> {
    type Item = (Name, V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for IntoIter<V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl<V> ExactSizeIterator for IntoIter<V> {}
impl<V> FusedIterator for IntoIter<V> {}

impl<'a, V> IntoIterator for &'a ObjectMap<V> {
    type Item = (&'a Name, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

impl<'a, V> IntoIterator for &'a mut ObjectMap<V> {
    type Item = (&'a Name, &'a mut V);
    type IntoIter = IterMut<'a, V>;

    fn into_iter(self) -> IterMut<'a, V> {
        self.iter_mut()
    }
}

impl<V> IntoIterator for ObjectMap<V> {
    type Item = (Name, V);
    type IntoIter = IntoIter<V>;

    fn into_iter(self) -> IntoIter<V> {
        IntoIter(self.entries.into_iter())
    }
}

/// A field of an [`ObjectMap`], present or not.
pub enum Entry<'a, V> {
    /// The map has the field.
    Occupied(OccupiedEntry<'a, V>),
    /// The map does not have the field.
    Vacant(VacantEntry<'a, V>),
}

impl<'a, V> Entry<'a, V> {
    /// The field's name.
    pub fn key(&self) -> &Name {
        match self {
            Entry::Occupied(entry) => entry.key(),
            Entry::Vacant(entry) => entry.key(),
        }
    }

    /// The field's value, `default` inserted first when the map has none.
    pub fn or_insert(self, default: V) -> &'a mut V {
        self.or_insert_with(|| default)
    }

    /// The field's value, `default()` inserted first when the map has none.
    pub fn or_insert_with(self, default: impl FnOnce() -> V) -> &'a mut V {
        match self {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(default()),
        }
    }

    /// The field's value, `V::default()` inserted first when the map has none.
    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

/// A field an [`ObjectMap`] has.
pub struct OccupiedEntry<'a, V> {
    map: &'a mut ObjectMap<V>,
    position: usize,
}

impl<'a, V> OccupiedEntry<'a, V> {
    /// The field's name.
    pub fn key(&self) -> &Name {
        &self.map.entries[self.position].0
    }

    /// The field's value.
    pub fn get(&self) -> &V {
        &self.map.entries[self.position].1
    }

    /// The field's value, to change.
    pub fn get_mut(&mut self) -> &mut V {
        &mut self.map.entries[self.position].1
    }

    /// The field's value, to change, for as long as the map is borrowed.
    pub fn into_mut(self) -> &'a mut V {
        &mut self.map.entries[self.position].1
    }

    /// Replaces the field's value and returns the one it had.
    pub fn insert(&mut self, value: V) -> V {
        std::mem::replace(self.get_mut(), value)
    }
}

/// A field an [`ObjectMap`] does not have.
pub struct VacantEntry<'a, V> {
    map: &'a mut ObjectMap<V>,
    key: Name,
}

impl<'a, V> VacantEntry<'a, V> {
    /// The field's name.
    pub fn key(&self) -> &Name {
        &self.key
    }

    /// Appends the field with `value`, and returns the value, to change.
    #[inline(always)]
    pub fn insert(self, value: V) -> &'a mut V {
        let map = self.map;
        map.push(self.key, value);
        let last = map.entries.len() - 1;
        &mut map.entries[last].1
    }
}
