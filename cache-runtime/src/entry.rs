//! A cached method's entry as a call sees it: its storage key, and what a look-up found.

use std::any::Any;

use crate::backend::{EntryKey, EntryMeta};
use crate::codec::SerdeVTable;
use crate::site::CachedSite;

/// The length of the scope prefix of a storage key.
const SCOPE_LEN: usize = 8;

/// A storage key being built: the method's scope, then the rendered key.
pub(crate) fn start_storage_key(scope: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&scope.to_le_bytes());
}

/// The rendered part of a storage key.
pub(crate) fn rendered_bytes(storage: &[u8]) -> &[u8] {
    storage.get(SCOPE_LEN..).unwrap_or_default()
}

/// A storage key: the method's scope (8 bytes) followed by the rendered UTF-8 key.
#[derive(Clone)]
pub(crate) struct OwnedKey(Box<[u8]>);

impl OwnedKey {
    pub(crate) fn new(storage: Box<[u8]>) -> Self {
        OwnedKey(storage)
    }
    pub(crate) fn storage(&self) -> &[u8] {
        &self.0
    }
    pub(crate) fn rendered(&self) -> &str {
        std::str::from_utf8(rendered_bytes(&self.0)).unwrap_or("<invalid key>")
    }
    /// The key in a shared backend: in the key space of the method's value version and of
    /// the cache's (`cache_version`), two numbers that never stand for each other.
    pub(crate) fn entry_key<'k>(
        &'k self,
        site: &'static CachedSite,
        cache_version: u32,
        serde: Option<&'static SerdeVTable>,
        tags: &'k [String],
    ) -> EntryKey<'k> {
        let scope = versioned_scope(site.scope, b'm', site.version);
        EntryKey {
            method: site.name,
            scope: versioned_scope(scope, b'c', cache_version),
            key: self.rendered(),
            serde,
            tags,
        }
    }
}

/// The key space of a method's values at `version` of a `kind` (the method's, the cache's):
/// its own scope at version 0 (so that entries written before versions existed stay
/// readable), another one at each other.
pub(crate) fn versioned_scope(scope: u64, kind: u8, version: u32) -> u64 {
    if version == 0 {
        return scope;
    }
    let mut bytes = [0u8; 13];
    bytes[..8].copy_from_slice(&scope.to_le_bytes());
    bytes[8] = kind;
    bytes[9..].copy_from_slice(&version.to_le_bytes());
    crate::key::fnv1a(&bytes)
}

/// What a look-up found for a key, judged by its expiry.
pub(crate) enum Found<V> {
    Fresh(V),
    EarlyRefresh(V),
    Stale(V),
    Miss,
}

/// Judges a stored value for `site` at `now`: fresh (or due for an early refresh), stale, or a
/// miss (expired, or a value of another type).
pub(crate) fn classify<V: Clone + 'static>(
    site: &CachedSite,
    value: &dyn Any,
    meta: &EntryMeta,
    now: u64,
) -> Found<V> {
    let Some(value) = value.downcast_ref::<V>() else {
        // Another method's value under this key (two methods sharing a name): a miss.
        return Found::Miss;
    };
    if now < meta.fresh_until {
        if site.beta > 0.0 {
            // XFetch: recompute early with a probability that grows as expiry nears.
            let delta_ms = meta.load_micros as f64 / 1000.0;
            let gap = -delta_ms * site.beta * fastrand::f64().max(f64::MIN_POSITIVE).ln();
            if now as f64 + gap >= meta.fresh_until as f64 {
                return Found::EarlyRefresh(value.clone());
            }
        }
        Found::Fresh(value.clone())
    } else if now < meta.stale_until {
        Found::Stale(value.clone())
    } else {
        Found::Miss
    }
}

#[cfg(test)]
mod version_tests {
    use super::versioned_scope;

    #[test]
    fn a_method_version_and_a_cache_version_name_different_key_spaces() {
        let scope = 0x1234;
        assert_eq!(
            versioned_scope(scope, b'm', 0),
            scope,
            "no version: the old key space"
        );
        let method_1 = versioned_scope(scope, b'm', 1);
        let cache_1 = versioned_scope(scope, b'c', 1);
        assert_ne!(method_1, scope);
        assert_ne!(method_1, versioned_scope(scope, b'm', 2));
        assert_ne!(
            method_1, cache_1,
            "a method at version 1 in a cache at 0 is not a method at 0 in a cache at 1"
        );
    }
}
