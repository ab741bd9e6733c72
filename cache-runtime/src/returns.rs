//! How a method's return value is split into "store this" and "pass this through".
//!
//! `#[cached]` never looks at the name of the return type. It asks the compiler, through
//! `autoref::Probe`, which of these shapes the type has:
//! - `Result<T, E>` (under any alias): `Ok(T)` is cached, `Err(E)` is returned untouched. When
//!   `E: Clone`, callers waiting on the same load share the error; otherwise they retry.
//! - anything else, `Option<T>` included: the whole value is cached.

use std::any::Any;
use std::sync::Arc;

use crate::codec::{SerdeOf, SerdeVTable};

/// A value that can be kept in the cache: cloned out on every hit and shared between tasks.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a cached value must be `Clone + Send + Sync + 'static`",
    label = "the cached value type",
    note = "derive `Clone`; use `Arc`, `Mutex` or atomics rather than `Rc`, `RefCell` or `Cell`; own borrowed data"
)]
pub trait CacheValue: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> CacheValue for T {}

/// A value that may be `None`, for `cache_none = false`.
#[diagnostic::on_unimplemented(
    message = "`cache_none = false` needs a value type of `Option<_>`, found `{Self}`",
    label = "not an `Option`",
    note = "remove `cache_none = false`, or use `unless = <expr over result>` to skip storing some values"
)]
pub trait MaybeNone {
    /// Whether this is `None`.
    fn is_none(&self) -> bool;
}

impl<T> MaybeNone for Option<T> {
    #[inline]
    fn is_none(&self) -> bool {
        Option::is_none(self)
    }
}

/// What a return value means for the cache.
pub trait ReturnShape<R>: Copy + Send + Sync + 'static {
    /// The part of the return value that is cached.
    type Value: CacheValue;
    /// The cacheable value, or `None` when `r` is an error to pass through.
    fn value<'r>(&self, r: &'r R) -> Option<&'r Self::Value>;
    /// Rebuilds a return value from a cached value.
    fn wrap_value(&self, value: Self::Value) -> R;
    /// An error, boxed for callers waiting on the same load; `None` when it cannot be shared.
    fn share_error(&self, r: &R) -> Option<Arc<dyn Any + Send + Sync>>;
    /// Rebuilds an error shared by [`share_error`](Self::share_error).
    fn shared_error(&self, shared: &(dyn Any + Send + Sync)) -> Option<R>;
    /// How to turn the value into bytes, when its type is `Serialize + DeserializeOwned`.
    fn serde(&self) -> Option<&'static SerdeVTable> {
        None
    }
}

/// A shape whose value type is `Serialize + DeserializeOwned`: it can be stored as bytes.
#[derive(Clone, Copy, Debug)]
pub struct Serde<S>(pub S);

impl<R, S> ReturnShape<R> for Serde<S>
where
    S: ReturnShape<R>,
    S::Value: serde::Serialize + serde::de::DeserializeOwned,
{
    type Value = S::Value;
    #[inline]
    fn value<'r>(&self, r: &'r R) -> Option<&'r Self::Value> {
        self.0.value(r)
    }
    #[inline]
    fn wrap_value(&self, value: Self::Value) -> R {
        self.0.wrap_value(value)
    }
    fn share_error(&self, r: &R) -> Option<Arc<dyn Any + Send + Sync>> {
        self.0.share_error(r)
    }
    fn shared_error(&self, shared: &(dyn Any + Send + Sync)) -> Option<R> {
        self.0.shared_error(shared)
    }
    fn serde(&self) -> Option<&'static SerdeVTable> {
        Some(const { &SerdeOf::<S::Value>::VTABLE })
    }
}

/// `Result<T, E>` with an error that can be cloned and shared.
#[derive(Clone, Copy, Debug)]
pub struct ResultSharedError;
/// `Result<T, E>` whose error cannot be shared.
#[derive(Clone, Copy, Debug)]
pub struct ResultOwnError;
/// Any other type: the whole value is cached.
#[derive(Clone, Copy, Debug)]
pub struct Whole;

impl<T: CacheValue, E: Clone + Send + Sync + 'static> ReturnShape<Result<T, E>>
    for ResultSharedError
{
    type Value = T;
    #[inline]
    fn value<'r>(&self, r: &'r Result<T, E>) -> Option<&'r T> {
        r.as_ref().ok()
    }
    #[inline]
    fn wrap_value(&self, value: T) -> Result<T, E> {
        Ok(value)
    }
    fn share_error(&self, r: &Result<T, E>) -> Option<Arc<dyn Any + Send + Sync>> {
        match r {
            Err(e) => Some(Arc::new(e.clone())),
            Ok(_) => None,
        }
    }
    fn shared_error(&self, shared: &(dyn Any + Send + Sync)) -> Option<Result<T, E>> {
        shared.downcast_ref::<E>().cloned().map(Err)
    }
}

impl<T: CacheValue, E> ReturnShape<Result<T, E>> for ResultOwnError {
    type Value = T;
    #[inline]
    fn value<'r>(&self, r: &'r Result<T, E>) -> Option<&'r T> {
        r.as_ref().ok()
    }
    #[inline]
    fn wrap_value(&self, value: T) -> Result<T, E> {
        Ok(value)
    }
    fn share_error(&self, _: &Result<T, E>) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
    fn shared_error(&self, _: &(dyn Any + Send + Sync)) -> Option<Result<T, E>> {
        None
    }
}

impl<R: CacheValue> ReturnShape<R> for Whole {
    type Value = R;
    #[inline]
    fn value<'r>(&self, r: &'r R) -> Option<&'r R> {
        Some(r)
    }
    #[inline]
    fn wrap_value(&self, value: R) -> R {
        value
    }
    fn share_error(&self, _: &R) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
    fn shared_error(&self, _: &(dyn Any + Send + Sync)) -> Option<R> {
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::autoref::*;

    type Alias<T> = Result<T, std::io::Error>;

    fn shape_name<S: 'static>(_: S) -> &'static str {
        let name = std::any::type_name::<S>();
        name.strip_prefix("cache_runtime::returns::")
            .unwrap_or(name)
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows select the shape
    fn probe_sees_through_aliases() {
        #[derive(Clone)]
        struct Opaque;
        let shared_serde = "Serde<cache_runtime::returns::ResultSharedError>";
        let own_serde = "Serde<cache_runtime::returns::ResultOwnError>";
        assert_eq!(
            shape_name((&&&&&Probe::<Result<u8, String>>::NEW).shape()),
            shared_serde
        );
        assert_eq!(
            shape_name((&&&&&Probe::<Result<Opaque, String>>::NEW).shape()),
            "ResultSharedError"
        );
        assert_eq!(
            shape_name((&&&&&Probe::<Alias<u8>>::NEW).shape()),
            own_serde
        );
        assert_eq!(
            shape_name((&&&&&Probe::<Alias<Opaque>>::NEW).shape()),
            "ResultOwnError"
        );
        assert_eq!(
            shape_name((&&&&&Probe::<Option<u8>>::NEW).shape()),
            "Serde<cache_runtime::returns::Whole>"
        );
        assert_eq!(shape_name((&&&&&Probe::<Opaque>::NEW).shape()), "Whole");
        assert_eq!(
            shape_name((&&&&&Probe::<Option<Opaque>>::NEW).shape()),
            "Whole"
        );
    }
}
