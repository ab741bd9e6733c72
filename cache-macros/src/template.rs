//! Key and tag templates: `"customer.email.{email | lower | sha256}"`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Ident, LitStr};

use crate::errors::Errors;
use crate::private::PRIVATE;

/// A parsed template.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    /// What the template renders: "key" or "tag".
    what: String,
    pub(crate) pieces: Vec<Piece>,
    /// Each placeholder directly followed by a literal, with the literal's first character:
    /// the runtime's rule says, at compile time, whether that character is a separator.
    followed_by: Vec<(String, char)>,
    /// Whether a placeholder was dropped as malformed (and reported): the template does not
    /// show every argument it meant to use.
    pub(crate) incomplete: bool,
}

pub(crate) enum Piece {
    Literal(String),
    Placeholder(Placeholder),
}

/// `{root.field.sub | filter | filter}`.
pub(crate) struct Placeholder {
    pub(crate) text: String,
    pub(crate) root: String,
    pub(crate) fields: Vec<String>,
    /// The names of the filters, spanned on the template. Which names are filters is the
    /// runtime's to say: each is a field of `cache_runtime::__private_0_1_0::FILTERS`, so that rustc
    /// reports an unknown one on the template, with the list of filters or the closest one.
    pub(crate) filters: Vec<Ident>,
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

impl Template {
    /// Parses `lit`, reporting every problem to `errors`. `what` names the argument ("key").
    pub(crate) fn parse(lit: &LitStr, what: &str, errors: &mut Errors) -> Template {
        let source = lit.value();
        let mut pieces = Vec::new();
        let mut followed_by = Vec::new();
        let mut incomplete = false;
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => errors.error(
                    lit,
                    format!(
                        "unmatched `}}` in {what} template {source:?}; write `}}}}` for a literal \
                         brace"
                    ),
                ),
                '{' => {
                    let Some(end) = source[at..].find('}') else {
                        let message = format!(
                            "unclosed `{{` in {what} template {source:?}; close the placeholder \
                             with `}}`, or write `{{{{` for a literal brace"
                        );
                        errors.error(lit, message);
                        incomplete = true;
                        break;
                    };
                    let inner = &source[at + 1..at + end];
                    while chars.peek().is_some_and(|(i, _)| *i <= at + end) {
                        chars.next();
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    match Placeholder::parse(inner, lit, what, errors) {
                        Some(placeholder) => {
                            if let Some(Piece::Placeholder(previous)) = pieces.last() {
                                let (a, b) = (&previous.text, &placeholder.text);
                                let message = format!(
                                    "placeholders `{a}` and `{b}` are adjacent in {what} template \
                                     {source:?}, so different values could render the same \
                                     {what}; separate them with a literal such as `.` or `:`, \
                                     e.g. `{a}.{b}`"
                                );
                                errors.error(lit, message);
                            }
                            pieces.push(Piece::Placeholder(placeholder));
                        }
                        None => incomplete = true,
                    }
                }
                c => {
                    if let Some(Piece::Placeholder(p)) = pieces.last() {
                        if literal.is_empty() {
                            followed_by.push((p.text.clone(), c));
                        }
                    }
                    literal.push(c);
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Template {
            lit: lit.clone(),
            what: what.to_owned(),
            pieces,
            followed_by,
            incomplete,
        }
    }

    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Placeholder(p) => Some(p),
            Piece::Literal(_) => None,
        })
    }

    /// The runtime's `Template` value, after a constant assertion, spanned on the template,
    /// for each placeholder followed by a literal: that the literal starts with a separator,
    /// by the runtime's `is_separator_start`.
    pub(crate) fn to_runtime(&self) -> TokenStream {
        let source_text = self.lit.value();
        let separator_checks = self.followed_by.iter().map(|(placeholder, c)| {
            let message = not_a_separator(&source_text, &self.what, placeholder, *c);
            let span = self.lit.span();
            let private = PRIVATE.at(span);
            quote_spanned! {span=>
                // `panic!("{}", message)`: constant, and unformatted in every edition.
                const _: () = if !#private::is_separator_start(#c) {
                    ::core::panic!("{}", #message)
                };
            }
        });
        let source = &self.lit;
        let segments = self.pieces.iter().map(|piece| match piece {
            Piece::Literal(text) => quote!(#PRIVATE::Segment::Literal(#text)),
            Piece::Placeholder(p) => {
                let filters = p.filters.iter().map(|name| {
                    let private = PRIVATE.at(name.span());
                    quote_spanned!(name.span()=> #private::FILTERS.#name)
                });
                quote!(#PRIVATE::Segment::Value(&[#(#filters),*]))
            }
        });
        quote! {
            {
                #(#separator_checks)*
                #PRIVATE::Template {
                    source: #source,
                    segments: &[#(#segments),*],
                }
            }
        }
    }
}

/// Why `placeholder` cannot be followed by `c` in `source`.
fn not_a_separator(source: &str, what: &str, placeholder: &str, c: char) -> String {
    let why = if c == '%' {
        format!(
            "`%` begins every escape in an encoded value (`\"1.2\"` renders as `1%2E2`), so the \
             separator could be read as part of a value, and different values could render the \
             same {what}; start the separator with another ASCII character such as `.`, `:` or \
             `/`"
        )
    } else if !c.is_ascii() {
        format!(
            "`{c}` is not ASCII, and values keep non-ASCII characters unencoded, so it could also \
             be part of a value, and different values could render the same {what}; start the \
             separator with an ASCII character such as `.`, `:` or `/`"
        )
    } else {
        format!(
            "a placeholder must be followed by the end of the template or by a separator such as \
             `.`, `:` or `/`, so that different values cannot render the same {what}"
        )
    };
    format!(
        "in {what} template {source:?}, placeholder `{placeholder}` is followed by `{c}`: {why}"
    )
}

impl Placeholder {
    fn parse(inner: &str, lit: &LitStr, what: &str, errors: &mut Errors) -> Option<Placeholder> {
        let text = format!("{{{inner}}}");
        let mut parts = inner.split('|').map(str::trim);
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            let message = format!(
                "empty placeholder `{text}` in {what} template; name an argument, e.g. `{{id}}`"
            );
            errors.error(lit, message);
            return None;
        }
        let mut segments = path.split('.').map(str::trim);
        let root = segments.next().unwrap_or_default().to_string();
        let fields: Vec<String> = segments.map(str::to_string).collect();
        let mut ok = true;
        if root == "self" {
            let message = format!(
                "`{text}`: templates interpolate the function's arguments, not `self`; pass the \
                 value as an argument"
            );
            errors.error(lit, message);
            ok = false;
        } else if !is_ident(&root)
            || fields
                .iter()
                .any(|f| !is_ident(f) && f.parse::<usize>().is_err())
        {
            let message = format!(
                "malformed placeholder `{text}` in {what} template: write `{{arg}}`, \
                 `{{arg.field}}` or `{{arg | filter}}`"
            );
            errors.error(lit, message);
            ok = false;
        }
        let mut filters = Vec::new();
        for filter in parts {
            // Only that a name is there: rustc reports an unknown one (see the `filters`
            // field). A malformed one is reported, and the placeholder is kept so that its
            // argument counts as used.
            let example = format!("`{{{path} | lower}}`");
            match filter_name(filter, lit) {
                Some(name) => filters.push(name),
                None if filter.is_empty() => errors.error(
                    lit,
                    format!(
                        "empty filter in `{text}`: remove the `|`, or name a filter, e.g. \
                         {example}"
                    ),
                ),
                None => errors.error(
                    lit,
                    format!(
                        "malformed filter `{filter}` in `{text}`: a filter is named by an \
                         identifier, e.g. {example}"
                    ),
                ),
            }
        }
        ok.then_some(Placeholder {
            text,
            root,
            fields,
            filters,
        })
    }
}

/// `filter`, a plain identifier (not a keyword, not raw), spanned on `lit`.
fn filter_name(filter: &str, lit: &LitStr) -> Option<Ident> {
    let mut name = syn::parse_str::<Ident>(filter)
        .ok()
        .filter(|_| is_ident(filter))?;
    name.set_span(lit.span());
    Some(name)
}
