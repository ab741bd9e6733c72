//! Parses the arguments of `#[cached(...)]` and `#[invalidates(...)]` into typed models.
//! Nothing here looks at the function: that is `valid.rs`.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, Expr, Ident, LitBool, LitStr, Token};

use crate::duration::{self, Millis};
use crate::errors::Errors;

/// `swr` or `swr = N`.
pub(crate) struct Swr {
    pub(crate) span: Span,
    pub(crate) window: Option<Millis>,
}

/// `result_tags` or `result_tags = <expr>`.
pub(crate) enum ResultTags {
    Entity(Span),
    Expr(Expr),
}

#[derive(Default)]
pub(crate) struct CachedArgs {
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl: Option<Millis>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) swr: Option<Swr>,
    pub(crate) beta: Option<(f64, Span)>,
    pub(crate) jitter: Option<Millis>,
    pub(crate) cache: Option<Expr>,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) condition: Option<Expr>,
    pub(crate) unless: Option<Expr>,
    pub(crate) result_tags: Option<ResultTags>,
    pub(crate) ignore: Vec<Ident>,
    pub(crate) name: Option<LitStr>,
}

#[derive(Default)]
pub(crate) struct InvalidatesArgs {
    pub(crate) tags: Vec<LitStr>,
    pub(crate) keys: Vec<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) name: Option<LitStr>,
}

const CACHED_OPTIONS: &[&str] = &[
    "key", "ttl", "tags", "swr", "beta", "jitter", "cache", "cache_none", "condition", "unless",
    "result_tags", "ignore", "name",
];
const INVALIDATES_OPTIONS: &[&str] = &["tags", "keys", "cache", "name"];

pub(crate) fn parse_cached(tokens: TokenStream, errors: &mut Errors) -> CachedArgs {
    let mut args = CachedArgs::default();
    parse_options(tokens, "cached", CACHED_OPTIONS, errors, |name, input, errors| {
        match name.to_string().as_str() {
            "key" => args.key = Some(value(input)?),
            "ttl" => args.ttl = Some(duration::parse(&value(input)?, "ttl")?),
            "jitter" => args.jitter = Some(duration::parse(&value(input)?, "jitter")?),
            "tags" => args.tags = string_list(input)?,
            "swr" => {
                let window = if input.peek(Token![=]) {
                    Some(duration::parse(&value(input)?, "swr")?)
                } else {
                    None
                };
                args.swr = Some(Swr { span: name.span(), window });
            }
            "beta" => {
                let expr: Expr = value(input)?;
                let beta = match &expr {
                    Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f64>()?,
                    Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<u32>()? as f64,
                    _ => {
                        return Err(syn::Error::new_spanned(&expr, "`beta` takes a positive number, e.g. `beta = 1.0`"))
                    }
                };
                if beta <= 0.0 {
                    errors.error(&expr, "`beta` must be greater than 0 (1.0 is XFetch's default); remove it to turn early recomputation off");
                }
                args.beta = Some((beta, syn::spanned::Spanned::span(&expr)));
            }
            "cache" => args.cache = Some(value(input)?),
            "cache_none" => args.cache_none = Some(value(input)?),
            "condition" => args.condition = Some(value(input)?),
            "unless" => args.unless = Some(value(input)?),
            "result_tags" => {
                args.result_tags = Some(if input.peek(Token![=]) {
                    ResultTags::Expr(value(input)?)
                } else {
                    ResultTags::Entity(name.span())
                })
            }
            "ignore" => {
                input.parse::<Token![=]>()?;
                let content;
                bracketed!(content in input);
                args.ignore = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?.into_iter().collect();
            }
            "name" => args.name = Some(value(input)?),
            _ => unreachable!("filtered by parse_options"),
        }
        Ok(())
    });
    args
}

pub(crate) fn parse_invalidates(tokens: TokenStream, errors: &mut Errors) -> InvalidatesArgs {
    let mut args = InvalidatesArgs::default();
    parse_options(tokens, "invalidates", INVALIDATES_OPTIONS, errors, |name, input, _| {
        match name.to_string().as_str() {
            "tags" => args.tags = string_list(input)?,
            "keys" => args.keys = string_list(input)?,
            "cache" => args.cache = Some(value(input)?),
            "name" => args.name = Some(value(input)?),
            _ => unreachable!("filtered by parse_options"),
        }
        Ok(())
    });
    args
}

fn value<T: syn::parse::Parse>(input: ParseStream) -> syn::Result<T> {
    input.parse::<Token![=]>()?;
    input.parse()
}

fn string_list(input: ParseStream) -> syn::Result<Vec<LitStr>> {
    input.parse::<Token![=]>()?;
    let content;
    bracketed!(content in input);
    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    items
        .into_iter()
        .map(|item| match item {
            Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Ok(s),
            other => Err(syn::Error::new_spanned(other, "expected a string literal template, e.g. \"customer.{id}\"")),
        })
        .collect()
}

/// Walks `name [= value], ...`, calling `each` for known, first-seen options and reporting
/// unknown and duplicate ones. After an error it skips to the next top-level comma.
fn parse_options(
    tokens: TokenStream,
    attribute: &str,
    known: &[&str],
    errors: &mut Errors,
    mut each: impl FnMut(&Ident, ParseStream, &mut Errors) -> syn::Result<()>,
) {
    let parser = |input: ParseStream| -> syn::Result<()> {
        let mut seen = HashSet::new();
        while !input.is_empty() {
            let name = match input.call(Ident::parse_any) {
                Ok(name) => name,
                Err(e) => {
                    errors.push(syn::Error::new(e.span(), format!("expected an option of #[{attribute}]: {}", known.join(", "))));
                    skip_to_comma(input);
                    continue;
                }
            };
            let text = name.to_string();
            if !known.contains(&text.as_str()) {
                errors.error(&name, format!("unknown option `{text}` for #[{attribute}]; the options are: {}", known.join(", ")));
                skip_to_comma(input);
            } else if !seen.insert(text.clone()) {
                errors.error(&name, format!("duplicate option `{text}`: give it once"));
                skip_to_comma(input);
            } else if let Err(e) = each(&name, input, errors) {
                errors.push(e);
                skip_to_comma(input);
            } else if !input.is_empty() && !input.peek(Token![,]) {
                errors.push(input.error(format!("expected `,` after option `{text}`")));
                skip_to_comma(input);
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(tokens) {
        errors.push(e);
    }
}

fn skip_to_comma(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt {
                if p.as_char() == ',' {
                    return Ok(((), rest));
                }
            }
            rest = next;
        }
        Ok(((), rest))
    });
}
