//! Compile-time dispatch for the expansion of `#[cached]`, by autoref specialization. Not
//! public API.
//!
//! The expansion writes `(&&&&&Probe::<R>::NEW).shape()` with this module's traits in scope.
//! Method resolution tries `Self = &&&&Probe<R>`, `&&&&&Probe<R>`, `&&&Probe<R>`,
//! `&&Probe<R>`, `&Probe<R>`, `Probe<R>` in that order, and picks the first impl whose bounds
//! hold: so a `Result` whose error is `Clone` shares errors, a value type that is
//! `Serialize + DeserializeOwned` can be stored as bytes, and anything else is cached whole.
//! New levels can be added here without touching the macro.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::batch::{lookup_batch, BatchLookup, BatchPending, BatchReturn};
use crate::codec::{SerdeOf, SerdeVTable};
use crate::key::{KeyArg, Plain, PlainKey};
use crate::load::{Load, Options};
use crate::lookup::{lookup, lookup_blocking, Lookup, Pending};
use crate::returns::{ResultOwnError, ResultSharedError, ReturnShape, Serde, Whole};
use crate::site::CachedSite;
use crate::{Cache, CacheValue};

/// The probe of a return type `R`.
pub struct Probe<R>(PhantomData<fn() -> R>);

impl<R> Probe<R> {
    /// The probe.
    pub const NEW: Self = Probe(PhantomData);
}

/// Level 1: a `Result` with a shareable error and a serializable value.
pub trait SharedErrorSerdeShape {
    /// The shape.
    fn shape(&self) -> Serde<ResultSharedError> {
        Serde(ResultSharedError)
    }
}
impl<T, E> SharedErrorSerdeShape for &&&&Probe<Result<T, E>>
where
    T: Serialize + DeserializeOwned,
    E: Clone + Send + Sync + 'static,
{
}

/// Level 2: a `Result` with a shareable error.
pub trait SharedErrorShape {
    /// The shape.
    fn shape(&self) -> ResultSharedError {
        ResultSharedError
    }
}
impl<T, E: Clone + Send + Sync + 'static> SharedErrorShape for &&&&&Probe<Result<T, E>> {}

/// Level 3: a `Result` with a serializable value.
pub trait OwnErrorSerdeShape {
    /// The shape.
    fn shape(&self) -> Serde<ResultOwnError> {
        Serde(ResultOwnError)
    }
}
impl<T: Serialize + DeserializeOwned, E> OwnErrorSerdeShape for &&&Probe<Result<T, E>> {}

/// Level 4: any `Result`.
pub trait OwnErrorShape {
    /// The shape.
    fn shape(&self) -> ResultOwnError {
        ResultOwnError
    }
}
impl<T, E> OwnErrorShape for &&Probe<Result<T, E>> {}

/// Level 5: a serializable value, cached whole.
pub trait WholeSerdeShape {
    /// The shape.
    fn shape(&self) -> Serde<Whole> {
        Serde(Whole)
    }
}
impl<R: Serialize + DeserializeOwned> WholeSerdeShape for &Probe<R> {}

/// Level 6: any value, cached whole.
pub trait WholeShape {
    /// The shape.
    fn shape(&self) -> Whole {
        Whole
    }
}
impl<R> WholeShape for Probe<R> {}

/// The cached value type of `R`, as `PhantomData`: `T` of a `Result<T, E>`, else `R`.
pub struct ValueProbe<R>(pub PhantomData<fn() -> R>);

/// `T` of a `Result<T, E>`.
pub trait ResultValue {
    /// The value type.
    type Value;
    /// The value type, as `PhantomData`.
    #[inline(always)]
    fn __cache_value(&self) -> PhantomData<Self::Value> {
        PhantomData
    }
}
impl<T, E> ResultValue for &ValueProbe<Result<T, E>> {
    type Value = T;
}

/// The whole type.
pub trait WholeValue {
    /// The value type.
    type Value;
    /// The value type, as `PhantomData`.
    #[inline(always)]
    fn __cache_value(&self) -> PhantomData<Self::Value> {
        PhantomData
    }
}
impl<R> WholeValue for ValueProbe<R> {
    type Value = R;
}

/// Reports `CacheValue`'s message over the return type when the value type cannot be cached.
#[inline(always)]
pub fn value_check<V: CacheValue>(value: PhantomData<V>) -> PhantomData<V> {
    value
}

/// Picks [`Real`] when the shape holds, [`Fallback`] otherwise (after `value_check` already
/// reported why), so that the runtime's other bounds do not repeat the error.
pub struct Select<R, S>(PhantomData<fn() -> (R, S)>);

impl<R, S> Select<R, S> {
    /// A selector for the shape `S` of `R`.
    #[inline(always)]
    pub fn new(_: &S) -> Self {
        Select(PhantomData)
    }
}

/// The real runtime.
pub trait SelectReal {
    /// Picks it.
    #[inline(always)]
    fn __cache_select(&self) -> Real {
        Real
    }
}
impl<R, S> SelectReal for &Select<R, S>
where
    S: ReturnShape<R>,
    R: Send + 'static,
{
}

/// The stand-in.
pub trait SelectFallback {
    /// Picks it.
    #[inline(always)]
    fn __cache_select(&self) -> Fallback {
        Fallback
    }
}
impl<R, S> SelectFallback for Select<R, S> {}

/// Checks `R: Send + 'static` only when the value type is fine (else that error is enough).
pub trait ReturnCheckOn {
    /// The check.
    #[inline(always)]
    fn __cache_return_check(&self) -> ReturnCheck {
        ReturnCheck
    }
}
impl<R, S: ReturnShape<R>> ReturnCheckOn for &Select<R, S> {}

/// No check.
pub trait ReturnCheckOff {
    /// No check.
    #[inline(always)]
    fn __cache_return_check(&self) -> NoReturnCheck {
        NoReturnCheck
    }
}
impl<R, S> ReturnCheckOff for Select<R, S> {}

/// rustc reports a missing auto trait from its leaf ("`Rc<str>` cannot be sent between
/// threads safely"), so a custom message would not show: the method's name says what is
/// required.
pub struct ReturnCheck;
impl ReturnCheck {
    /// Requires `R: Send + 'static`.
    #[inline(always)]
    pub fn __cache_return_type_must_be_send_and_static<R: Send + 'static>(
        &self,
        _: PhantomData<R>,
    ) {
    }
}

/// Checks nothing.
pub struct NoReturnCheck;
impl NoReturnCheck {
    /// Requires nothing.
    #[inline(always)]
    pub fn __cache_return_type_must_be_send_and_static<R>(&self, _: PhantomData<R>) {}
}

/// The outcome of the first half of a call.
pub enum Step<R, P> {
    /// Return this.
    Hit(R),
    /// Go on with this.
    Miss(P),
}

impl<R, V> From<Lookup<R, V>> for Step<R, Pending<V>> {
    #[inline(always)]
    fn from(found: Lookup<R, V>) -> Self {
        match found {
            Lookup::Hit(value) => Step::Hit(value),
            Lookup::Miss(pending) => Step::Miss(pending),
        }
    }
}

/// Routes to `lookup` and `Pending::load`.
pub struct Real;

impl Real {
    /// The first half of a call.
    #[inline(always)]
    pub fn __cache_lookup<R, S: ReturnShape<R>>(
        &self,
        site: &'static CachedSite,
        cache: &Cache,
        args: &[&(dyn KeyArg + Sync)],
        shape: S,
        enabled: bool,
    ) -> Step<R, Pending<S::Value>> {
        lookup(site, cache, args, shape, enabled).into()
    }

    /// The first half of a blocking function's call.
    #[inline(always)]
    pub fn __cache_lookup_blocking<R, S: ReturnShape<R>>(
        &self,
        site: &'static CachedSite,
        cache: &Cache,
        args: &[&(dyn KeyArg + Sync)],
        shape: S,
        enabled: bool,
    ) -> Step<R, Pending<S::Value>> {
        lookup_blocking(site, cache, args, shape, enabled).into()
    }

    /// The second half of a call, boxed: its state (the shared look-up, the flight, the body's
    /// future) is allocated on a miss only, so that the method's own future stays small and
    /// a hit neither builds nor moves it.
    #[inline(always)]
    pub fn __cache_load<R, S, V, L>(
        &self,
        _: PhantomData<V>,
        pending: Pending<V>,
        shape: S,
        options: Options<V>,
        load: L,
    ) -> Pin<Box<impl Future<Output = R>>>
    where
        S: ReturnShape<R, Value = V>,
        V: CacheValue,
        L: Load<R>,
        R: Send + 'static,
    {
        Box::pin(pending.load(shape, options, load))
    }
}

/// Compiles without further errors when the value type cannot be cached; never runs.
pub struct Fallback;

/// The pending state of [`Fallback`].
pub struct Uncached;

impl Fallback {
    /// Stands in for [`Real::__cache_lookup`].
    #[inline(always)]
    pub fn __cache_lookup<R, S>(
        &self,
        _: &'static CachedSite,
        _: &Cache,
        _: &[&(dyn KeyArg + Sync)],
        _: S,
        _: bool,
    ) -> Step<R, Uncached> {
        Step::Miss(Uncached)
    }

    /// Stands in for [`Real::__cache_lookup_blocking`].
    #[inline(always)]
    pub fn __cache_lookup_blocking<R, S>(
        &self,
        _: &'static CachedSite,
        _: &Cache,
        _: &[&(dyn KeyArg + Sync)],
        _: S,
        _: bool,
    ) -> Step<R, Uncached> {
        Step::Miss(Uncached)
    }

    /// Stands in for [`Real::__cache_load`].
    #[inline(always)]
    pub fn __cache_load<R, S, V, L>(
        &self,
        _: PhantomData<V>,
        _: Uncached,
        _: S,
        _: Options<V>,
        _: L,
    ) -> std::future::Pending<R> {
        std::future::pending()
    }
}

/// The probe of a batch method's return type `R`, for the codec of one id's value.
pub struct BatchProbe<R>(PhantomData<fn() -> R>);

impl<R> BatchProbe<R> {
    /// The probe.
    pub const NEW: Self = BatchProbe(PhantomData);
}

/// A batch whose values are serializable: one id's value, `Option<Item>`, can be stored as
/// bytes.
pub trait BatchSerde {
    /// The codec of `Option<Item>`.
    fn __cache_batch_serde(&self) -> Option<&'static SerdeVTable>;
}
impl<R> BatchSerde for &BatchProbe<R>
where
    R: BatchReturn,
    R::Value: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    #[inline(always)]
    fn __cache_batch_serde(&self) -> Option<&'static SerdeVTable> {
        Some(&SerdeOf::<Option<R::Value>>::VTABLE)
    }
}

/// Any other batch: kept in process only.
pub trait BatchNoSerde {
    /// No codec.
    #[inline(always)]
    fn __cache_batch_serde(&self) -> Option<&'static SerdeVTable> {
        None
    }
}
impl<R> BatchNoSerde for BatchProbe<R> {}

/// The selector of a batch method's path, by its return type `R` and its id type `K`:
/// `(&&&BatchSelect::<R, K>::NEW).__cache_batch()`.
///
/// Level 1's bounds are [`batch_return_check`](crate::batch::batch_return_check)'s, which
/// the expansion also calls: a method that passes the check takes the cached path, and one
/// that does not gets the check's error and a stand-in path that adds none.
pub struct BatchSelect<R, K>(PhantomData<fn() -> (R, K)>);

impl<R, K> BatchSelect<R, K> {
    /// The selector.
    pub const NEW: Self = BatchSelect(PhantomData);
}

/// Level 1 of a batch: `R` is a map of `K`s to values that can be cached, and the batch is
/// cached.
pub trait BatchSelectReal<R, K> {
    /// The path.
    #[inline(always)]
    fn __cache_batch(&self) -> RealBatch<R, K> {
        RealBatch(PhantomData)
    }
}
impl<R, K> BatchSelectReal<R, K> for &&BatchSelect<R, K>
where
    R: BatchReturn<Key = K>,
    R::Value: CacheValue,
{
}

/// Level 2 of a batch: a map, of other ids or of values that cannot be cached. The stand-in
/// path types the options with the map's values, so that expressions over `result` add no
/// error of their own.
pub trait BatchSelectMap<R: BatchReturn, K> {
    /// The path.
    #[inline(always)]
    fn __cache_batch(&self) -> FallbackBatch<R, K, Option<R::Value>> {
        FallbackBatch(PhantomData)
    }
}
impl<R: BatchReturn, K> BatchSelectMap<R, K> for &BatchSelect<R, K> {}

/// Level 3 of a batch: any other return type, whose options are typed with [`NoValue`].
pub trait BatchSelectFallback<R, K> {
    /// The path.
    #[inline(always)]
    fn __cache_batch(&self) -> FallbackBatch<R, K, Option<NoValue>> {
        FallbackBatch(PhantomData)
    }
}
impl<R, K> BatchSelectFallback<R, K> for BatchSelect<R, K> {}

/// The path of a batch whose return type is a map of its ids.
pub struct RealBatch<R, K>(PhantomData<fn() -> (R, K)>);

impl<R, K> RealBatch<R, K>
where
    R: BatchReturn<Key = K>,
    R::Value: CacheValue,
    K: Clone,
{
    /// The first half of the call: see [`lookup_batch`].
    #[inline(always)]
    pub fn lookup<'i>(
        &self,
        site: &'static CachedSite,
        cache: &Cache,
        ids: impl IntoIterator<Item = &'i K>,
        args: impl Fn(&K, &mut dyn FnMut(&[&(dyn KeyArg + Sync)])),
        serde: Option<&'static SerdeVTable>,
        enabled: bool,
    ) -> BatchLookup<R, BatchPending<K, R>>
    where
        K: 'i,
    {
        lookup_batch(site, cache, ids, args, serde, enabled)
    }
}

/// A type parameter list, held without owning anything of it.
type Marker<T> = PhantomData<fn() -> T>;

/// The path of a batch that fails the check: it stands in for [`RealBatch`], with options
/// over values of type `V`. Never runs: the check's error stops the build.
pub struct FallbackBatch<R, K, V>(Marker<(R, K, V)>);

/// No value type: the options of a batch that returns no map are typed with it.
pub enum NoValue {}

impl<R, K, V> FallbackBatch<R, K, V> {
    /// Stands in for [`RealBatch::lookup`].
    #[inline(always)]
    pub fn lookup<'i>(
        &self,
        _: &'static CachedSite,
        _: &Cache,
        _: impl IntoIterator<Item = &'i K>,
        _: impl Fn(&K, &mut dyn FnMut(&[&(dyn KeyArg + Sync)])),
        _: Option<&'static SerdeVTable>,
        _: bool,
    ) -> BatchLookup<R, UncachedBatch<R, K, V>>
    where
        K: 'i,
    {
        BatchLookup::Miss(UncachedBatch(PhantomData))
    }
}

/// The pending state of [`FallbackBatch`].
pub struct UncachedBatch<R, K, V>(Marker<(R, K, V)>);

impl<R, K, V> UncachedBatch<R, K, V> {
    /// Stands in for [`BatchPending::load`]; the body is still type-checked against `R`.
    #[inline(always)]
    pub async fn load<F, Fut>(self, _: Options<V>, _: F) -> R
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = R>,
    {
        unreachable!("a batch method that fails `batch_return_check` does not compile")
    }
}

/// The probe of a placeholder's value: `(&&KeyArgProbe(&value)).__cache_key_arg()` is the
/// value as a `Plain` when its type writes its key text without `fmt` (strings, integers),
/// and the value itself otherwise, which the expansion's argument slice then casts to
/// `&dyn KeyArg` (so that a type without `Display` gets `KeyArg`'s message, on the cast).
pub struct KeyArgProbe<'a, T: ?Sized>(pub &'a T);

/// Level 1 of a placeholder's value: a `PlainKey` type.
pub trait PlainKeyArg<'a, T> {
    /// The value, rendered without `fmt`.
    fn __cache_key_arg(&self) -> &'a Plain<T>;
}
impl<'a, T: PlainKey> PlainKeyArg<'a, T> for &KeyArgProbe<'a, T> {
    #[inline]
    fn __cache_key_arg(&self) -> &'a Plain<T> {
        Plain::wrap(self.0)
    }
}

impl<'a, T: ?Sized> KeyArgProbe<'a, T> {
    /// Level 2 of a placeholder's value, for any type (rendered through `Display`): the value
    /// itself. Inherent, so that it is found whatever the expansion imports, and a value whose
    /// type is an error (a misspelt field) adds no error of its own.
    #[inline]
    pub fn __cache_key_arg(&self) -> &'a T {
        self.0
    }
}

/// Every trait above, imported anonymously: the expansion glob-imports this module, which
/// brings the methods into scope without binding a single name in the user's function.
pub mod traits {
    pub use super::{
        BatchNoSerde as _, BatchSelectFallback as _, BatchSelectMap as _, BatchSelectReal as _,
        BatchSerde as _, OwnErrorSerdeShape as _, OwnErrorShape as _, PlainKeyArg as _,
        ResultValue as _, ReturnCheckOff as _, ReturnCheckOn as _, SelectFallback as _,
        SelectReal as _, SharedErrorSerdeShape as _, SharedErrorShape as _, WholeSerdeShape as _,
        WholeShape as _, WholeValue as _,
    };
}

#[cfg(test)]
mod tests {
    use super::traits::*;
    use super::KeyArgProbe;
    use crate::key::{KeyArg, Plain};

    fn rendered(value: &dyn KeyArg) -> Vec<u8> {
        let mut out = Vec::new();
        value.render(&mut out);
        out
    }

    /// The types checked here (by the compiler) are the ones the expansion gets for each kind
    /// of placeholder value: strings and integers without `fmt`, anything else through
    /// `Display`.
    #[test]
    // The expansion's exact receiver, `&&KeyArgProbe`, is what is under test.
    #[allow(clippy::needless_borrow)]
    fn strings_and_integers_take_the_plain_path_and_other_types_display() {
        let text = "a.b";
        let plain: &Plain<&str> = (&&KeyArgProbe(&text)).__cache_key_arg();
        assert_eq!(rendered(plain), b"a%2Eb");
        let owned = String::from("a.b");
        let plain: &Plain<String> = (&&KeyArgProbe(&owned)).__cache_key_arg();
        assert_eq!(rendered(plain), b"a%2Eb");
        let number = -5i64;
        let plain: &Plain<i64> = (&&KeyArgProbe(&number)).__cache_key_arg();
        assert_eq!(rendered(plain), b"-5");
        let address = std::net::Ipv4Addr::LOCALHOST;
        let displayed: &std::net::Ipv4Addr = (&&KeyArgProbe(&address)).__cache_key_arg();
        assert_eq!(rendered(displayed), b"127%2E0%2E0%2E1");
        let wide = 7u128;
        let displayed: &u128 = (&&KeyArgProbe(&wide)).__cache_key_arg();
        assert_eq!(rendered(displayed), b"7");
    }
}
