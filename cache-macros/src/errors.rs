//! Collects every error of an attribute, so that all are reported at once.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

/// Errors, each with the position of the option it is about (see [`Errors::at`]), so that
/// they are reported in the order of the attribute rather than in the order of the checks.
pub(crate) struct Errors {
    errors: Vec<(usize, syn::Error)>,
    order: usize,
}

impl Default for Errors {
    fn default() -> Self {
        Errors {
            errors: Vec::new(),
            order: Errors::AFTER_OPTIONS,
        }
    }
}

impl Errors {
    /// The position of errors about the function rather than about one option.
    pub(crate) const AFTER_OPTIONS: usize = usize::MAX;

    /// The errors pushed from now on are about the option at `position` in the attribute
    /// ([`Errors::AFTER_OPTIONS`]: about the function).
    pub(crate) fn at(&mut self, position: usize) {
        self.order = position;
    }

    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push((self.order, error));
    }

    /// An error on `tokens`, spanning all of them (from the first token to the last).
    pub(crate) fn error(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn error_at(&mut self, span: proc_macro2::Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The `compile_error!`s of every collected error, in the order of the attribute.
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        let mut errors: Vec<&(usize, syn::Error)> = self.errors.iter().collect();
        errors.sort_by_key(|(order, _)| *order);
        errors
            .into_iter()
            .map(|(_, error)| error.to_compile_error())
            .collect()
    }
}

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= limit || c.starts_with(name) || name.starts_with(*c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_are_matched() {
        assert_eq!(closest("tll", ["key", "ttl", "tags"]), Some("ttl"));
        assert_eq!(closest("idd", ["id", "page"]), Some("id"));
        assert_eq!(closest("limt", ["page", "limit"]), Some("limit"));
        assert_eq!(
            closest("lowercase", ["lower", "upper", "trim", "sha256"]),
            Some("lower")
        );
        assert_eq!(closest("customer_id", ["id"]), None);
        assert_eq!(
            closest("refresh", ["key", "ttl", "tags", "swr", "beta"]),
            None
        );
    }
}
