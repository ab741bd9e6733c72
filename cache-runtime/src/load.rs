//! How the expansion hands a method's body and per-call options to the runtime.

use std::future::Future;
use std::pin::Pin;

use crate::lifetime::Computed;
use crate::result_tags::TagSink;

/// The body of a `#[cached]` method.
pub trait Load<R>: Sized {
    /// Whether [`detach`](Load::detach) can succeed.
    const DETACHABLE: bool;
    /// The body as a future that may borrow the call's arguments.
    type Inline: Future<Output = R>;
    /// The body, to run in the caller's task.
    fn inline(self) -> Self::Inline;
    /// The body as a `'static` future that can finish after the call returned (for background
    /// refreshes), or `self` back when it borrows from the call.
    #[allow(clippy::type_complexity)]
    fn detach(self) -> Result<Pin<Box<dyn Future<Output = R> + Send + 'static>>, Self>;
}

/// A body that borrows the call's arguments: it runs in the caller's task only.
pub struct Borrowed<F>(pub F);

/// A closure that clones the receiver and owns every argument, then returns the body as a
/// `'static` future, so that it can run in the background (stale-while-revalidate).
pub struct Detachable<G>(pub G);

impl<R, F: Future<Output = R>> Load<R> for Borrowed<F> {
    const DETACHABLE: bool = false;
    type Inline = F;
    fn inline(self) -> F {
        self.0
    }
    fn detach(self) -> Result<Pin<Box<dyn Future<Output = R> + Send + 'static>>, Self> {
        Err(self)
    }
}

impl<R, G, F> Load<R> for Detachable<G>
where
    G: FnOnce() -> F,
    F: Future<Output = R> + Send + 'static,
{
    const DETACHABLE: bool = true;
    type Inline = F;
    fn inline(self) -> F {
        (self.0)()
    }
    fn detach(self) -> Result<Pin<Box<dyn Future<Output = R> + Send + 'static>>, Self> {
        Ok(Box::pin((self.0)()))
    }
}

/// The per-call options of `#[cached]` that depend on the value type.
pub struct Options<V> {
    /// `unless = ...`: values for which it returns true are not stored.
    pub unless: Option<fn(&V) -> bool>,
    /// `cache_none = false`: `None` values are not stored.
    pub skip_none: Option<fn(&V) -> bool>,
    /// `result_tags`: tags computed from the value.
    pub result_tags: Option<fn(&V, &mut TagSink)>,
    /// `ttl = <expr over result>`: the value's TTL, checked.
    pub ttl: Option<fn(&V) -> Computed>,
    /// `swr = <expr over result>` (or a bare `swr` with a computed TTL): the value's stale
    /// window, checked.
    pub swr: Option<fn(&V) -> Computed>,
}

impl<V> Clone for Options<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Options<V> {}

impl<V> Options<V> {
    pub(crate) fn should_store(&self, value: &V) -> bool {
        !self.unless.is_some_and(|unless| unless(value))
            && !self.skip_none.is_some_and(|is_none| is_none(value))
    }
}
