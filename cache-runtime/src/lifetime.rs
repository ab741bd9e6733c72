//! TTL and `swr` computed from the loaded value: `ttl = <expr over result>`.
//!
//! The expression gives seconds (any integer type) or a [`Duration`]; each value is checked
//! when the entry is stored, never trusted: a TTL that is zero, negative or longer than
//! [`MAX_COMPUTED`] is replaced by [`COMPUTED_TTL_FALLBACK`], an `swr` that is negative or too
//! long by no stale window, and either is logged. Nothing here panics.

use std::time::Duration;

/// The TTL an entry gets when its `ttl = <expr>` gave a value that cannot be one: zero,
/// negative, or longer than [`MAX_COMPUTED`]. Short, so that a mistake costs loads, not stale
/// data.
pub const COMPUTED_TTL_FALLBACK: Duration = Duration::from_secs(60);

/// The longest computed TTL or `swr`: 10 years, as for literal durations.
pub const MAX_COMPUTED: Duration = Duration::from_secs(315_360_000);

/// What a `ttl = <expr>` or `swr = <expr>` expression may give: a whole number of seconds (any
/// integer type; an integer literal is an `i32`) or a [`Duration`].
///
/// ```
/// # use cache_runtime::{cached, Cache};
/// # #[derive(Clone)] pub struct Repo { cache: Cache }
/// # #[derive(Clone, Debug)] pub struct Quote { pub price: u64, pub valid_for: std::time::Duration }
/// impl Repo {
///     // Not found: 30 s (a short negative cache); found: 10 minutes.
///     #[cached(key = "customer.{id}", ttl = if result.is_none() { 30 } else { 600 })]
///     async fn find(&self, id: u64) -> Option<String> { None }
///
///     // As long as the value says.
///     #[cached(key = "quote.{sku}", ttl = result.valid_for)]
///     async fn quote(&self, sku: &str) -> Quote {
///         Quote { price: 1, valid_for: std::time::Duration::from_secs(5) }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`ttl` and `swr` expressions give seconds (an integer) or a `std::time::Duration`, not `{Self}`",
    label = "not a number of seconds or a `Duration`",
    note = "write e.g. `ttl = if result.is_none() {{ 30 }} else {{ 600 }}` or `ttl = result.valid_for`"
)]
pub trait TtlValue {
    /// The duration in milliseconds; negative for a negative number of seconds.
    fn millis(self) -> i128;
}

macro_rules! seconds {
    ($($int:ty),*) => {$(
        impl TtlValue for $int {
            fn millis(self) -> i128 {
                i128::from(self as i64).saturating_mul(1000)
            }
        }
    )*};
}
seconds!(i8, i16, i32, i64, u8, u16, u32, isize);

impl TtlValue for u64 {
    fn millis(self) -> i128 {
        i128::from(self).saturating_mul(1000)
    }
}

impl TtlValue for usize {
    fn millis(self) -> i128 {
        (self as u64).millis()
    }
}

impl TtlValue for Duration {
    fn millis(self) -> i128 {
        i128::try_from(self.as_millis()).unwrap_or(i128::MAX)
    }
}

impl<T: TtlValue + Copy> TtlValue for &T {
    fn millis(self) -> i128 {
        (*self).millis()
    }
}

/// A computed duration, checked: milliseconds, or why it cannot be used.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Computed {
    /// Usable, in milliseconds (0 only for an `swr`).
    Millis(u64),
    /// Negative, or zero for a TTL: the milliseconds it gave.
    NotPositive(i128),
    /// Longer than [`MAX_COMPUTED`]: the milliseconds it gave.
    TooLong(i128),
}

/// Checks what a `ttl = <expr>` gave.
#[doc(hidden)]
pub fn ttl<T: TtlValue>(value: T) -> Computed {
    check(value.millis(), 1)
}

/// Checks what an `swr = <expr>` gave: 0 is no stale window.
#[doc(hidden)]
pub fn swr<T: TtlValue>(value: T) -> Computed {
    check(value.millis(), 0)
}

fn check(ms: i128, least: i128) -> Computed {
    if ms < least {
        Computed::NotPositive(ms)
    } else if ms > MAX_COMPUTED.as_millis() as i128 {
        Computed::TooLong(ms)
    } else {
        Computed::Millis(ms as u64)
    }
}

/// A TTL or `swr` computed for one value, as [`resolve`] found it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) ms: u64,
    /// What the expression gave, when it could not be used (and `ms` is the fallback).
    pub(crate) refused: Option<Computed>,
}

/// The milliseconds `computed` stands for, or `fallback` when it cannot be used.
pub(crate) fn resolve(computed: Computed, fallback: u64) -> Resolved {
    match computed {
        Computed::Millis(ms) => Resolved { ms, refused: None },
        refused => Resolved {
            ms: fallback,
            refused: Some(refused),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_seconds_and_durations_are_themselves() {
        assert_eq!(ttl(30), Computed::Millis(30_000));
        assert_eq!(ttl(30_u8), Computed::Millis(30_000));
        let field = 600_u64;
        let by_reference: &u64 = &field; // `result.field` through a reference
        assert_eq!(ttl(by_reference), Computed::Millis(600_000));
        assert_eq!(ttl(Duration::from_millis(1500)), Computed::Millis(1500));
        assert_eq!(swr(0), Computed::Millis(0), "no stale window");
    }

    #[test]
    fn zero_negative_and_absurd_values_are_refused_without_overflow() {
        assert_eq!(ttl(0), Computed::NotPositive(0));
        assert_eq!(ttl(-5), Computed::NotPositive(-5000));
        assert_eq!(ttl(Duration::from_micros(400)), Computed::NotPositive(0));
        assert_eq!(swr(-1_i64), Computed::NotPositive(-1000));
        assert_eq!(
            ttl(u64::MAX),
            Computed::TooLong(i128::from(u64::MAX) * 1000)
        );
        assert_eq!(
            ttl(i64::MIN),
            Computed::NotPositive(i128::from(i64::MIN) * 1000)
        );
        assert!(matches!(ttl(Duration::MAX), Computed::TooLong(_)));
        assert_eq!(
            ttl(MAX_COMPUTED),
            Computed::Millis(315_360_000_000),
            "10 years is allowed"
        );
        assert_eq!(
            resolve(ttl(0), 60_000),
            Resolved {
                ms: 60_000,
                refused: Some(Computed::NotPositive(0))
            }
        );
    }
}
