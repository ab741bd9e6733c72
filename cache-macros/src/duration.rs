//! `ttl = 600`, `ttl = "10m"`, `swr = "250ms"`: durations written in attributes.

use proc_macro2::Span;
use syn::{Expr, ExprLit, ExprUnary, Lit, UnOp};

/// A duration in milliseconds, with the span of the literal it came from.
#[derive(Clone, Copy)]
pub(crate) struct Millis {
    pub(crate) value: u64,
    pub(crate) span: Span,
}

const UNITS: &str = "ms, s, m, h or d";

/// The longest duration an option (`ttl`, `jitter`, `swr`, `lock`) may be: 10 years (365-day
/// years), in seconds. Longer ones are rejected at compile time: the runtime adds durations to
/// the current time, and `ttl = 18446744073709551615` would overflow there. Documented in
/// `cache-runtime/docs/cached.md`.
pub(crate) const MAX_DURATION_SECS: u64 = 315_360_000;

/// The error for a duration longer than [`MAX_DURATION_SECS`]; `written` is how it was written.
fn too_long(span: Span, what: &str, written: &str) -> syn::Error {
    syn::Error::new(
        span,
        format!(
            "`{what}` of {written} is longer than the maximum of {MAX_DURATION_SECS} seconds \
             (10 years, \"3650d\"): the cache cannot compute deadlines that far away; write a \
             shorter duration"
        ),
    )
}

/// Reads a duration: an integer (seconds) or a string such as `"250ms"`, `"10m"`, `"1h30m"`.
pub(crate) fn parse(expr: &Expr, what: &str) -> Result<Millis, syn::Error> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            // A literal's digits fail to parse only when they overflow `u64`.
            let seconds: u64 = int.base10_parse().unwrap_or(u64::MAX);
            if seconds > MAX_DURATION_SECS {
                let written = format!("{} seconds", int.base10_digits());
                return Err(too_long(int.span(), what, &written));
            }
            Ok(Millis {
                value: seconds * 1000,
                span: int.span(),
            })
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => {
            let value = parse_text(&text.value()).map_err(|TextError { reason, fixed }| {
                let fix = match fixed {
                    Some(fixed) => format!("write {fixed:?}"),
                    None => concat!(
                        "write e.g. \"250ms\", \"30s\", \"10m\", \"1h30m\" or an integer number ",
                        "of seconds",
                    )
                    .to_string(),
                };
                let written = text.value();
                let message = format!("malformed `{what}` {written:?}: {reason}; {fix}");
                syn::Error::new(text.span(), message)
            })?;
            if value > MAX_DURATION_SECS * 1000 {
                return Err(too_long(text.span(), what, &format!("{:?}", text.value())));
            }
            Ok(Millis {
                value,
                span: text.span(),
            })
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Err(syn::Error::new_spanned(
            expr,
            format!(
                "`{what}` cannot be negative; write a positive number of seconds or a string \
                 like \"10m\""
            ),
        )),
        Expr::Lit(ExprLit {
            lit: Lit::Float(_), ..
        }) => Err(syn::Error::new_spanned(
            expr,
            format!("`{what}` takes whole seconds; for fractions write a string like \"1500ms\""),
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{what}` takes an integer number of seconds or a string like \"10m\""),
        )),
    }
}

/// Why a duration string is malformed, and the same duration written correctly when that is
/// clear (`"10 minutes"` is `"10m"`).
#[derive(Debug, PartialEq)]
struct TextError {
    reason: String,
    fixed: Option<String>,
}

impl From<String> for TextError {
    fn from(reason: String) -> Self {
        TextError {
            reason,
            fixed: None,
        }
    }
}

impl From<&str> for TextError {
    fn from(reason: &str) -> Self {
        TextError {
            reason: reason.to_string(),
            fixed: None,
        }
    }
}

fn parse_text(text: &str) -> Result<u64, TextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if text.starts_with('-') {
        return Err("it is negative".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    // The same duration in units this parser knows, for the error message.
    let mut fixed = String::new();
    let mut fixable = true;
    let mut problem = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}").into());
        }
        // Too large for `u64`: longer than the maximum anyway.
        let number: u64 = rest[..digits].parse().unwrap_or(u64::MAX);
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let factor = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                problem.get_or_insert_with(|| format!("{number} has no unit ({UNITS})"));
                fixable = false;
                0
            }
            other => {
                problem.get_or_insert_with(|| format!("unknown unit {other:?} (use {UNITS})"));
                match unit_alias(other) {
                    Some(short) => fixed.push_str(&format!("{number}{short}")),
                    None => fixable = false,
                }
                0
            }
        };
        if factor > 0 {
            fixed.push_str(&format!("{number}{unit}"));
        }
        total = total.saturating_add(number.saturating_mul(factor));
        rest = rest[unit_len..].trim_start();
    }
    match problem {
        None => Ok(total),
        Some(reason) => Err(TextError {
            reason,
            fixed: fixable.then_some(fixed),
        }),
    }
}

/// The unit meant by a spelled-out one.
fn unit_alias(unit: &str) -> Option<&'static str> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "millis" | "msec" | "msecs" | "millisecond" | "milliseconds" => "ms",
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse, parse_text, TextError, MAX_DURATION_SECS};

    fn millis(expr: &str) -> Result<u64, String> {
        let expr: syn::Expr = syn::parse_str(expr).unwrap();
        parse(&expr, "ttl")
            .map(|m| m.value)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_longer_than_ten_years_are_rejected() {
        assert_eq!(MAX_DURATION_SECS, 10 * 365 * 86_400);
        assert_eq!(millis("315360000"), Ok(315_360_000_000));
        assert_eq!(millis("\"3650d\""), Ok(315_360_000_000));
        let too_long = |written: &str| {
            format!(
                "`ttl` of {written} is longer than the maximum of 315360000 seconds (10 years, \
                 \"3650d\"): the cache cannot compute deadlines that far away; write a shorter \
                 duration"
            )
        };
        assert_eq!(millis("315360001"), Err(too_long("315360001 seconds")));
        assert_eq!(
            millis("18446744073709551615"),
            Err(too_long("18446744073709551615 seconds"))
        );
        assert_eq!(
            millis("99999999999999999999999"),
            Err(too_long("99999999999999999999999 seconds"))
        );
        assert_eq!(millis("\"1000000d\""), Err(too_long("\"1000000d\"")));
        assert_eq!(millis("\"3650d1ms\""), Err(too_long("\"3650d1ms\"")));
        assert_eq!(
            millis("\"99999999999999999999999ms\""),
            Err(too_long("\"99999999999999999999999ms\""))
        );
    }

    #[test]
    fn units() {
        assert_eq!(parse_text("250ms"), Ok(250));
        assert_eq!(parse_text("10m"), Ok(600_000));
        assert_eq!(parse_text("1h30m"), Ok(5_400_000));
        assert_eq!(parse_text("2d"), Ok(172_800_000));
        assert!(parse_text("10").is_err());
        assert_eq!(parse_text("1h 30m"), Ok(5_400_000));
        assert_eq!(
            parse_text("10 minutes"),
            Err(TextError {
                reason: "unknown unit \"minutes\" (use ms, s, m, h or d)".into(),
                fixed: Some("10m".into())
            })
        );
        assert!(parse_text("10 fortnights").is_err());
        assert!(parse_text("-5s").is_err());
        assert!(parse_text("").is_err());
    }
}
