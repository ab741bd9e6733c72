//! Key and tag templates: `"customer.email.{email | lower | sha256}"`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

use crate::errors::{closest, Errors};

pub(crate) const FILTERS: &[&str] = &["lower", "upper", "trim", "sha256"];

/// A parsed template.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    pub(crate) pieces: Vec<Piece>,
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
    pub(crate) filters: Vec<String>,
}

/// Whether the runtime copies `byte` into a key unchanged (keep in sync with
/// `cache_runtime::key::is_plain`).
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || byte == b'@' || byte >= 0x80
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
                '}' => errors.error(lit, format!("unmatched `}}` in {what} template {source:?}; write `}}}}` for a literal brace")),
                '{' => {
                    let Some(end) = source[at..].find('}') else {
                        errors.error(lit, format!("unclosed `{{` in {what} template {source:?}; close the placeholder with `}}`, or write `{{{{` for a literal brace"));
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
                                errors.error(lit, format!(
                                    "placeholders `{}` and `{}` are adjacent in {what} template {source:?}, so different values could render the same {what}; separate them with a literal such as `.` or `:`, e.g. `{}.{}`",
                                    previous.text, placeholder.text, previous.text, placeholder.text
                                ));
                            }
                            pieces.push(Piece::Placeholder(placeholder));
                        }
                        None => incomplete = true,
                    }
                }
                c => {
                    if matches!(pieces.last(), Some(Piece::Placeholder(_))) && literal.is_empty() && c.is_ascii() && is_plain(c as u8) {
                        if let Some(Piece::Placeholder(p)) = pieces.last() {
                            errors.error(lit, format!(
                                "in {what} template {source:?}, placeholder `{}` is followed by `{c}`: a placeholder must be followed by the end of the template or by a separator such as `.`, `:` or `/`, so that different values cannot render the same {what}",
                                p.text
                            ));
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
            pieces,
            incomplete,
        }
    }

    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Placeholder(p) => Some(p),
            Piece::Literal(_) => None,
        })
    }

    /// The runtime's `Template` value.
    pub(crate) fn to_runtime(&self) -> TokenStream {
        let source = &self.lit;
        let segments = self.pieces.iter().map(|piece| match piece {
            Piece::Literal(text) => quote!(::cache_runtime::__private::Segment::Literal(#text)),
            Piece::Placeholder(p) => {
                let filters = p.filters.iter().map(|f| {
                    let variant = syn::Ident::new(
                        match f.as_str() {
                            "lower" => "Lower",
                            "upper" => "Upper",
                            "trim" => "Trim",
                            _ => "Sha256",
                        },
                        proc_macro2::Span::call_site(),
                    );
                    quote!(::cache_runtime::__private::Filter::#variant)
                });
                quote!(::cache_runtime::__private::Segment::Value(&[#(#filters),*]))
            }
        });
        quote! {
            ::cache_runtime::__private::Template {
                source: #source,
                segments: &[#(#segments),*],
            }
        }
    }
}

impl Placeholder {
    fn parse(inner: &str, lit: &LitStr, what: &str, errors: &mut Errors) -> Option<Placeholder> {
        let text = format!("{{{inner}}}");
        let mut parts = inner.split('|').map(str::trim);
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            errors.error(lit, format!("empty placeholder `{text}` in {what} template; name an argument, e.g. `{{id}}`"));
            return None;
        }
        let mut segments = path.split('.').map(str::trim);
        let root = segments.next().unwrap_or_default().to_string();
        let fields: Vec<String> = segments.map(str::to_string).collect();
        let mut ok = true;
        if root == "self" {
            errors.error(lit, format!("`{text}`: templates interpolate the function's arguments, not `self`; pass the value as an argument"));
            ok = false;
        } else if !is_ident(&root)
            || fields
                .iter()
                .any(|f| !is_ident(f) && f.parse::<usize>().is_err())
        {
            errors.error(lit, format!("malformed placeholder `{text}` in {what} template: write `{{arg}}`, `{{arg.field}}` or `{{arg | filter}}`"));
            ok = false;
        }
        let mut filters = Vec::new();
        for filter in parts {
            if FILTERS.contains(&filter) {
                filters.push(filter.to_string());
            } else if filter.is_empty() {
                errors.error(
                    lit,
                    format!(
                        "empty filter in `{text}`: remove the `|`, or name a filter: {}",
                        FILTERS.join(", ")
                    ),
                );
            } else {
                // Reported; the placeholder is kept so that its argument counts as used.
                let filters = FILTERS.join(", ");
                let hint = match closest(filter, FILTERS.iter().copied()) {
                    Some(meant) => format!("did you mean `{meant}`? The filters are: {filters}"),
                    None => format!("the filters are: {filters}"),
                };
                errors.error(
                    lit,
                    format!("unknown filter `{filter}` in `{text}`; {hint}"),
                );
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
