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

/// Reads a duration: an integer (seconds) or a string such as `"250ms"`, `"10m"`, `"1h30m"`.
pub(crate) fn parse(expr: &Expr, what: &str) -> Result<Millis, syn::Error> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => {
            let seconds: u64 = int.base10_parse().map_err(|_| {
                syn::Error::new(int.span(), format!("`{what}` must be a whole number of seconds"))
            })?;
            Ok(Millis { value: seconds.saturating_mul(1000), span: int.span() })
        }
        Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) => {
            let value = parse_text(&text.value()).map_err(|TextError { reason, fixed }| {
                let fix = match fixed {
                    Some(fixed) => format!("write {fixed:?}"),
                    None => "write e.g. \"250ms\", \"30s\", \"10m\", \"1h30m\" or an integer number of seconds".to_string(),
                };
                syn::Error::new(text.span(), format!("malformed `{what}` {:?}: {reason}; {fix}", text.value()))
            })?;
            Ok(Millis { value, span: text.span() })
        }
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), .. }) => Err(syn::Error::new_spanned(
            expr,
            format!("`{what}` cannot be negative; write a positive number of seconds or a string like \"10m\""),
        )),
        Expr::Lit(ExprLit { lit: Lit::Float(_), .. }) => Err(syn::Error::new_spanned(
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
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_string())?;
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
    use super::{parse_text, TextError};

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
