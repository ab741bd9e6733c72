//! What a batch method returns: a map from its ids to their values, perhaps in a `Result`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use crate::CacheValue;

/// A map from ids to values that a batch method returns ([`HashMap`] and [`BTreeMap`]).
pub trait BatchMap<K, T>: Default + IntoIterator<Item = (K, T)> {
    /// An empty map with room for `n` values (as far as the map type can tell).
    fn with_capacity(n: usize) -> Self;
    /// The value of `key`.
    fn get(&self, key: &K) -> Option<&T>;
    /// Adds (or replaces) the value of `key`.
    fn insert(&mut self, key: K, item: T);
}

impl<K: Eq + Hash, T, S: BuildHasher + Default> BatchMap<K, T> for HashMap<K, T, S> {
    #[inline]
    fn with_capacity(n: usize) -> Self {
        HashMap::with_capacity_and_hasher(n, S::default())
    }
    #[inline]
    fn get(&self, key: &K) -> Option<&T> {
        HashMap::get(self, key)
    }
    #[inline]
    fn insert(&mut self, key: K, item: T) {
        HashMap::insert(self, key, item);
    }
}

impl<K: Ord, T> BatchMap<K, T> for BTreeMap<K, T> {
    #[inline]
    fn with_capacity(_: usize) -> Self {
        BTreeMap::new()
    }
    #[inline]
    fn get(&self, key: &K) -> Option<&T> {
        BTreeMap::get(self, key)
    }
    #[inline]
    fn insert(&mut self, key: K, item: T) {
        BTreeMap::insert(self, key, item);
    }
}

/// The return type of a batch `#[cached]` method (`batch = id in ids`): a map from ids to
/// values, alone or as the `Ok` of a `Result`. An id the map leaves out does not exist.
#[diagnostic::on_unimplemented(
    message = "a batch `#[cached]` method returns a map from its ids to their values, found `{Self}`",
    label = "not a `HashMap<Id, Value>` or `BTreeMap<Id, Value>`, alone or in a `Result`",
    note = "the body gets the ids that missed and returns the values of those that exist: `Result<HashMap<String, Customer>, E>`"
)]
pub trait BatchReturn: Sized {
    /// The id type: the keys of the map, and the items of the batch argument.
    type Key;
    /// The value of one id.
    type Value;
    /// The map.
    type Map: BatchMap<Self::Key, Self::Value>;
    /// The map, or `None` for an error.
    fn as_map(&self) -> Option<&Self::Map>;
    /// The map, or `self` back for an error.
    fn into_map(self) -> Result<Self::Map, Self>;
    /// A return value holding `map`.
    fn from_map(map: Self::Map) -> Self;
}

// The two bare maps' impls are alike but written out: a user's compile error for a wrong return
// type lists them, and a macro would show its own text there instead of these lines.
impl<K: Eq + Hash, T, S: BuildHasher + Default> BatchReturn for HashMap<K, T, S> {
    type Key = K;
    type Value = T;
    type Map = Self;
    fn as_map(&self) -> Option<&Self> {
        Some(self)
    }
    fn into_map(self) -> Result<Self, Self> {
        Ok(self)
    }
    fn from_map(map: Self) -> Self {
        map
    }
}

impl<K: Ord, T> BatchReturn for BTreeMap<K, T> {
    type Key = K;
    type Value = T;
    type Map = Self;
    fn as_map(&self) -> Option<&Self> {
        Some(self)
    }
    fn into_map(self) -> Result<Self, Self> {
        Ok(self)
    }
    fn from_map(map: Self) -> Self {
        map
    }
}

impl<M: BatchReturn, E> BatchReturn for Result<M, E> {
    type Key = M::Key;
    type Value = M::Value;
    type Map = M::Map;
    fn as_map(&self) -> Option<&M::Map> {
        self.as_ref().ok().and_then(M::as_map)
    }
    fn into_map(self) -> Result<M::Map, Self> {
        match self {
            Ok(map) => map.into_map().map_err(Ok),
            Err(error) => Err(Err(error)),
        }
    }
    fn from_map(map: M::Map) -> Self {
        Ok(M::from_map(map))
    }
}

/// Reports, over a batch method's return type (where the expansion spans the call), a return
/// type that is not a map of the method's ids, or whose values cannot be cached; the
/// expansion's dispatch adds no other error. Its bounds are those that select the cached
/// path (`BatchSelectReal` in `autoref.rs`): keep the two the same.
#[inline(always)]
pub fn batch_return_check<R, K>()
where
    R: BatchReturn<Key = K>,
    R::Value: CacheValue,
{
}
