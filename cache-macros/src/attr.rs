//! Parses the arguments of `#[cached(...)]` and `#[invalidates(...)]` into typed models.
//! Nothing here looks at the function: that is `valid.rs`.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, Expr, Ident, LitBool, LitStr, Token};

use crate::duration::{self, Millis};
use crate::errors::{closest, Errors};

/// `swr` or `swr = N`; `lock` or `lock = N`.
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
    pub(crate) lock: Option<Swr>,
    pub(crate) beta: Option<(f64, Span)>,
    pub(crate) jitter: Option<Millis>,
    pub(crate) cache: Option<Expr>,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) condition: Option<Expr>,
    pub(crate) unless: Option<Expr>,
    pub(crate) result_tags: Option<ResultTags>,
    pub(crate) ignore: Vec<Ident>,
    pub(crate) name: Option<LitStr>,
    /// Every option written, even with a malformed value (already reported), and the option
    /// an unknown one was taken for (`valid` does not also report them missing), with its
    /// position in the attribute (see [`Errors::at`]).
    pub(crate) given: HashMap<String, usize>,
}

#[derive(Default)]
pub(crate) struct InvalidatesArgs {
    pub(crate) tags: Vec<LitStr>,
    pub(crate) keys: Vec<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) name: Option<LitStr>,
    /// As [`CachedArgs::given`].
    pub(crate) given: HashMap<String, usize>,
}

const CACHED_OPTIONS: &[&str] = &[
    "key",
    "ttl",
    "tags",
    "swr",
    "lock",
    "beta",
    "jitter",
    "cache",
    "cache_none",
    "condition",
    "unless",
    "result_tags",
    "ignore",
    "name",
];
const INVALIDATES_OPTIONS: &[&str] = &["tags", "keys", "cache", "name"];

pub(crate) fn parse_cached(tokens: TokenStream, errors: &mut Errors) -> CachedArgs {
    let mut args = CachedArgs::default();
    let given = parse_options(
        tokens,
        "cached",
        CACHED_OPTIONS,
        errors,
        |name, input, errors| {
            match name.to_string().as_str() {
                "key" => args.key = Some(string(name, input)?),
                "ttl" => args.ttl = Some(duration::parse(&value(name, input)?, "ttl")?),
                "jitter" => args.jitter = Some(duration::parse(&value(name, input)?, "jitter")?),
                "tags" => args.tags = string_list(name, input)?,
                "swr" => args.swr = Some(optional_duration(name, input)?),
                "lock" => args.lock = Some(optional_duration(name, input)?),
                "beta" => {
                    let expr: Expr = value(name, input)?;
                    let beta = match &expr {
                        Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Float(f),
                            ..
                        }) => f.base10_parse::<f64>()?,
                        Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Int(i),
                            ..
                        }) => i.base10_parse::<u32>()? as f64,
                        _ => {
                            return Err(syn::Error::new_spanned(
                                &expr,
                                "`beta` takes a positive number, e.g. `beta = 1.0`",
                            ))
                        }
                    };
                    if beta <= 0.0 {
                        errors.error(&expr, "`beta` must be greater than 0 (1.0 is XFetch's default); remove it to turn early recomputation off");
                    }
                    args.beta = Some((beta, syn::spanned::Spanned::span(&expr)));
                }
                "cache" => args.cache = Some(value(name, input)?),
                "cache_none" => {
                    let expr: Expr = value(name, input)?;
                    match expr {
                        Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Bool(b),
                            ..
                        }) => args.cache_none = Some(b),
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "`cache_none` takes `true` (the default) or `false`",
                            ))
                        }
                    }
                }
                "condition" => args.condition = Some(value(name, input)?),
                "unless" => args.unless = Some(value(name, input)?),
                "result_tags" => {
                    args.result_tags = Some(if input.peek(Token![=]) {
                        ResultTags::Expr(value(name, input)?)
                    } else {
                        ResultTags::Entity(name.span())
                    })
                }
                "ignore" => args.ignore = ident_list(name, input)?,
                "name" => args.name = Some(string(name, input)?),
                _ => unreachable!("filtered by parse_options"),
            }
            Ok(())
        },
    );
    args.given = given;
    args
}

pub(crate) fn parse_invalidates(tokens: TokenStream, errors: &mut Errors) -> InvalidatesArgs {
    let mut args = InvalidatesArgs::default();
    let given = parse_options(
        tokens,
        "invalidates",
        INVALIDATES_OPTIONS,
        errors,
        |name, input, _| {
            match name.to_string().as_str() {
                "tags" => args.tags = string_list(name, input)?,
                "keys" => args.keys = string_list(name, input)?,
                "cache" => args.cache = Some(value(name, input)?),
                "name" => args.name = Some(string(name, input)?),
                _ => unreachable!("filtered by parse_options"),
            }
            Ok(())
        },
    );
    args.given = given;
    args
}

/// How an option is written, for "needs a value" errors.
fn example(option: &str) -> &'static str {
    match option {
        "key" => "`key = \"customer.{id}\"`",
        "ttl" => "`ttl = 600` (seconds) or `ttl = \"10m\"`",
        "jitter" => "`jitter = 30` (seconds) or `jitter = \"30s\"`",
        "swr" => "`swr = 60` (seconds), `swr = \"1m\"`, or a bare `swr` for a window as long as the TTL",
        "lock" => "a bare `lock` (5 s), or `lock = \"2s\"`: how long another instance waits for this one's load",
        "beta" => "`beta = 1.0`",
        "tags" => "`tags = [\"customer\", \"customer.{id}\"]`",
        "keys" => "`keys = [\"customer.{id}\"]`",
        "cache" => "`cache = self.cache` or `cache = CACHE`",
        "cache_none" => "`cache_none = false`",
        "condition" => "`condition = id > 0`",
        "unless" => "`unless = result.is_empty()`",
        "result_tags" => "a bare `result_tags`, or `result_tags = result.iter().map(|c| format!(\"customer.{}\", c.id))`",
        "ignore" => "`ignore = [trace_id]`",
        "name" => "`name = \"customer.find_by_id\"`",
        _ => "`name = value`",
    }
}

/// A bare option (`swr`), or one with a duration (`swr = "1m"`).
fn optional_duration(name: &Ident, input: ParseStream) -> syn::Result<Swr> {
    let window = if input.peek(Token![=]) {
        Some(duration::parse(&value(name, input)?, &name.to_string())?)
    } else {
        None
    };
    Ok(Swr {
        span: name.span(),
        window,
    })
}

fn value<T: syn::parse::Parse>(name: &Ident, input: ParseStream) -> syn::Result<T> {
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "`{name}` needs a value, e.g. {}",
                example(&name.to_string())
            ),
        ));
    }
    input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "`{name}` needs a value after `=`, e.g. {}",
                example(&name.to_string())
            ),
        ));
    }
    input.parse()
}

/// `name = "..."`.
fn string(name: &Ident, input: ParseStream) -> syn::Result<LitStr> {
    match value::<Expr>(name, input)? {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "`{name}` takes a string literal, e.g. {}",
                example(&name.to_string())
            ),
        )),
    }
}

/// `name = [...]`: the bracketed contents.
fn list<'a>(name: &Ident, input: ParseStream<'a>) -> syn::Result<syn::parse::ParseBuffer<'a>> {
    let expected = format!(
        "`{name}` takes a list in square brackets, e.g. {}",
        example(&name.to_string())
    );
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(name.span(), expected));
    }
    input.parse::<Token![=]>()?;
    if !input.peek(syn::token::Bracket) {
        let found: Expr = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), &expected))?;
        return Err(syn::Error::new_spanned(found, expected));
    }
    let content;
    bracketed!(content in input);
    Ok(content)
}

fn string_list(name: &Ident, input: ParseStream) -> syn::Result<Vec<LitStr>> {
    let content = list(name, input)?;
    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    items
        .into_iter()
        .map(|item| match item {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Ok(s),
            other => Err(syn::Error::new_spanned(
                other,
                "expected a string literal template, e.g. \"customer.{id}\"",
            )),
        })
        .collect()
}

fn ident_list(name: &Ident, input: ParseStream) -> syn::Result<Vec<Ident>> {
    let content = list(name, input)?;
    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    items
        .into_iter()
        .map(|item| match item {
            Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
                Some(ident) => Ok(ident.clone()),
                None => Err(syn::Error::new_spanned(
                    p,
                    format!(
                        "`{name}` lists argument names, e.g. {}",
                        example(&name.to_string())
                    ),
                )),
            },
            other => Err(syn::Error::new_spanned(
                other,
                format!(
                    "`{name}` lists argument names, e.g. {}",
                    example(&name.to_string())
                ),
            )),
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
) -> HashMap<String, usize> {
    let mut seen = HashSet::new();
    let mut given = HashMap::new();
    let parser = |input: ParseStream| -> syn::Result<()> {
        let mut position = 0;
        while !input.is_empty() {
            errors.at(position);
            position += 1;
            let name = match input.call(Ident::parse_any) {
                Ok(name) => name,
                Err(e) => {
                    errors.push(syn::Error::new(
                        e.span(),
                        format!("expected an option of #[{attribute}]: {}", known.join(", ")),
                    ));
                    skip_to_comma(input);
                    continue;
                }
            };
            let text = name.to_string();
            if !known.contains(&text.as_str()) {
                match closest(&text, known.iter().copied()) {
                    Some(meant) => {
                        errors.error(&name, format!("unknown option `{text}` for #[{attribute}]; did you mean `{meant}`?"));
                        // Do not also report the option meant as missing.
                        given.entry(meant.to_string()).or_insert(position - 1);
                    }
                    None => errors.error(
                        &name,
                        format!(
                            "unknown option `{text}` for #[{attribute}]; the options are: {}",
                            known.join(", ")
                        ),
                    ),
                }
                skip_to_comma(input);
            } else if !seen.insert(text.clone()) {
                errors.error(&name, format!("duplicate option `{text}`: it is already given earlier in this attribute; keep one"));
                skip_to_comma(input);
            } else if let Err(e) = {
                given.insert(text.clone(), position - 1);
                each(&name, input, errors)
            } {
                errors.push(e);
                skip_to_comma(input);
            } else if !input.is_empty() && !input.peek(Token![,]) {
                errors.push(input.error(format!("expected `,` after option `{text}`")));
                // When an option follows, read on as if the comma were there:
                // `key = "..." ttl = 600` is one mistake.
                let next_is_option = input
                    .fork()
                    .call(Ident::parse_any)
                    .is_ok_and(|next| known.contains(&next.to_string().as_str()));
                if !next_is_option {
                    skip_to_comma(input);
                }
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
    errors.at(Errors::AFTER_OPTIONS);
    given
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
