//! `#[invalidates]`: invalidate tags and keys after a successful write.

use std::future::Future;

use crate::cache::KEY_TAG_PREFIX;
use crate::key::KeyArg;
use crate::returns::{ResultOwnError, ResultSharedError, Serde, Whole};
use crate::site::InvalidatesSite;
use crate::Cache;

/// Whether a return value means the write succeeded: `Ok` for a `Result`, always otherwise.
pub trait Succeeded<R> {
    /// Whether `r` is a success.
    fn succeeded(&self, r: &R) -> bool;
}

impl<T, E> Succeeded<Result<T, E>> for ResultSharedError {
    fn succeeded(&self, r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}

impl<T, E> Succeeded<Result<T, E>> for ResultOwnError {
    fn succeeded(&self, r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}

impl<R, S: Succeeded<R>> Succeeded<R> for Serde<S> {
    fn succeeded(&self, r: &R) -> bool {
        self.0.succeeded(r)
    }
}

impl<R> Succeeded<R> for Whole {
    fn succeeded(&self, _: &R) -> bool {
        true
    }
}

/// Renders an `#[invalidates]` site's tags and keys from the arguments, before the body runs
/// (it may consume them). The arguments come as one flat list: every tag's placeholders, then
/// every key's.
pub fn render(site: &InvalidatesSite, args: &[&(dyn KeyArg + Sync)]) -> Vec<String> {
    let mut rest = args;
    let mut out = Vec::with_capacity(site.tags.len() + site.keys.len());
    for template in site.tags {
        let n = template.placeholders().min(rest.len());
        out.push(template.render(&rest[..n]));
        rest = &rest[n..];
    }
    for template in site.keys {
        let n = template.placeholders().min(rest.len());
        out.push(format!("{KEY_TAG_PREFIX}{}", template.render(&rest[..n])));
        rest = &rest[n..];
    }
    out
}

/// The blocking `#[invalidates]`: runs the body, then, if it succeeded, invalidates in
/// process at once and queues the invalidation for the shared backend, which it reaches in
/// the background (`blocking.rs`).
pub fn invalidates_blocking<R, S, F>(
    site: &'static InvalidatesSite,
    cache: &Cache,
    tags: Vec<String>,
    shape: S,
    body: F,
) -> R
where
    S: Succeeded<R>,
    F: FnOnce() -> R,
{
    let result = body();
    if shape.succeeded(&result) {
        let counters = site.counters.get(cache, site.name);
        cache.invalidate_blocking(&tags, &counters, site.name);
    }
    result
}

/// Runs an `#[invalidates]` method: the body, then, if it succeeded, the invalidation.
///
/// The in-process invalidation happens in the same poll as the body's completion, so dropping
/// the caller's future cannot lose it; a shared backend's is queued before it is sent.
pub async fn invalidates<R, S, F>(
    site: &'static InvalidatesSite,
    cache: &Cache,
    tags: Vec<String>,
    shape: S,
    body: F,
) -> R
where
    S: Succeeded<R>,
    F: Future<Output = R>,
{
    let result = body.await;
    if shape.succeeded(&result) {
        let counters = site.counters.get(cache, site.name);
        // An error was logged and counted, and the invalidation stays queued.
        let _ = cache.invalidate(&tags, &counters, site.name).await;
    }
    result
}
