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
    let span = syn::spanned::Spanned::span(expr);
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => {
            let seconds: u64 = int.base10_parse().map_err(|_| {
                syn::Error::new(int.span(), format!("`{what}` must be a whole number of seconds"))
            })?;
            Ok(Millis { value: seconds.saturating_mul(1000), span: int.span() })
        }
        Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) => {
            let value = parse_text(&text.value()).map_err(|reason| {
                syn::Error::new(
                    text.span(),
                    format!("malformed `{what}` {:?}: {reason}; write e.g. \"250ms\", \"30s\", \"10m\", \"1h30m\" or an integer number of seconds", text.value()),
                )
            })?;
            Ok(Millis { value, span: text.span() })
        }
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), .. }) => Err(syn::Error::new(
            span,
            format!("`{what}` cannot be negative; write a positive number of seconds or a string like \"10m\""),
        )),
        Expr::Lit(ExprLit { lit: Lit::Float(_), .. }) => Err(syn::Error::new(
            span,
            format!("`{what}` takes whole seconds; for fractions write a string like \"1500ms\""),
        )),
        _ => Err(syn::Error::new(
            span,
            format!("`{what}` takes an integer number of seconds or a string like \"10m\""),
        )),
    }
}

fn parse_text(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if text.starts_with('-') {
        return Err("it is negative".into());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| "the number is too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{number} has no unit ({UNITS})")),
            other => return Err(format!("unknown unit {other:?} (use {UNITS})")),
        };
        total = total.saturating_add(number.saturating_mul(factor));
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_text;

    #[test]
    fn units() {
        assert_eq!(parse_text("250ms"), Ok(250));
        assert_eq!(parse_text("10m"), Ok(600_000));
        assert_eq!(parse_text("1h30m"), Ok(5_400_000));
        assert_eq!(parse_text("2d"), Ok(172_800_000));
        assert!(parse_text("10").is_err());
        assert!(parse_text("10 minutes").is_err());
        assert!(parse_text("-5s").is_err());
        assert!(parse_text("").is_err());
    }
}
