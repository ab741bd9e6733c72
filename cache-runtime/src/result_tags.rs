//! Tags computed from a loaded value.

use std::fmt::Display;
use std::sync::Arc;

/// Collects the tags of a value.
#[derive(Debug, Default)]
pub struct TagSink {
    tags: Vec<String>,
}

impl TagSink {
    /// Adds a tag.
    pub fn push(&mut self, tag: impl Display) {
        self.tags.push(tag.to_string());
    }

    /// Adds every tag of `tags`.
    pub fn extend<I>(&mut self, tags: I)
    where
        I: IntoIterator,
        I::Item: Display,
    {
        self.tags.extend(tags.into_iter().map(|t| t.to_string()));
    }

    /// The tags collected so far.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    pub(crate) fn into_tags(mut self) -> Vec<String> {
        self.tags.retain(|t| !t.is_empty());
        self.tags
    }

    /// Adds `prefix` followed by `value` encoded as a template placeholder would encode it, so
    /// that the tag matches one rendered from a template such as `"customer.{id}"`.
    ///
    /// ```
    /// let mut sink = cache_runtime::TagSink::default();
    /// sink.push_encoded("customer.", "acme.42");
    /// assert_eq!(sink.tags(), ["customer.acme%2E42"]);
    /// ```
    pub fn push_encoded(&mut self, prefix: &str, value: &str) {
        self.tags
            .push(format!("{prefix}{}", crate::key::encode_value(value)));
    }
}

/// A value that knows its own cache tags: an entity tags itself with its id, so that an entry
/// found by another key (an e-mail lookup, a list page) is dropped when the entity is saved.
///
/// Use it with the bare `result_tags` argument of `#[cached]`. `Option<T>`, `Vec<T>`, slices,
/// `Box<T>` and `Arc<T>` of such values are tagged with the tags of what they hold.
///
/// ```
/// use cache_runtime::{CacheTags, TagSink};
///
/// struct Customer { id: String }
///
/// impl CacheTags for Customer {
///     fn cache_tags(&self, tags: &mut TagSink) {
///         tags.push(format_args!("customer.{}", self.id));
///     }
/// }
///
/// let mut sink = TagSink::default();
/// vec![Customer { id: "1".into() }, Customer { id: "2".into() }].cache_tags(&mut sink);
/// assert_eq!(sink.tags(), ["customer.1", "customer.2"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no cache tags: bare `result_tags` needs `CacheTags`",
    label = "the cached value has no `CacheTags` implementation",
    note = "implement `cache_runtime::CacheTags` for `{Self}`, or write `result_tags = <expr over result>`"
)]
pub trait CacheTags {
    /// Adds this value's tags to `tags`.
    fn cache_tags(&self, tags: &mut TagSink);
}

impl<T: CacheTags> CacheTags for Option<T> {
    fn cache_tags(&self, tags: &mut TagSink) {
        if let Some(value) = self {
            value.cache_tags(tags);
        }
    }
}

impl<T: CacheTags> CacheTags for [T] {
    fn cache_tags(&self, tags: &mut TagSink) {
        for value in self {
            value.cache_tags(tags);
        }
    }
}

impl<T: CacheTags> CacheTags for Vec<T> {
    fn cache_tags(&self, tags: &mut TagSink) {
        self.as_slice().cache_tags(tags);
    }
}

impl<T: CacheTags + ?Sized> CacheTags for Box<T> {
    fn cache_tags(&self, tags: &mut TagSink) {
        (**self).cache_tags(tags);
    }
}

impl<T: CacheTags + ?Sized> CacheTags for Arc<T> {
    fn cache_tags(&self, tags: &mut TagSink) {
        (**self).cache_tags(tags);
    }
}
