//! Code generation from checked plans. The expansion is one static descriptor and the runtime
//! calls; everything else lives in `cache_runtime`. The generated code is spanned so that a
//! type error lands on the user's tokens (the return type, a template, an option's value), not
//! on the attribute: see `span_range`, `ranged` and `cached::dispatch`.

mod batch;
mod cached;
mod invalidates;
mod self_rewrite;

pub(crate) use cached::cached;
pub(crate) use invalidates::invalidates;

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::{Expr, Ident, ItemFn, LitStr, Type};

use crate::private::PRIVATE;
use crate::signature::Receiver;

/// The method's name: `name = "..."` or `module::path::fn_name`.
fn method_name(name: &Option<LitStr>, item: &ItemFn) -> TokenStream {
    match name {
        Some(lit) => quote!(#lit),
        None => {
            let ident = item.sig.ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    }
}

/// The cache expression, as `&Cache`. A `&mut self` method owns a handle first, since its
/// body takes `self` while the runtime holds the cache.
fn cache_ref(cache: &Option<Expr>, receiver: Receiver) -> TokenStream {
    let expr = match cache {
        Some(expr) => quote!(#expr),
        None => quote!(self.cache),
    };
    if receiver.is(Receiver::RefMut) {
        // The body takes `self`; own a handle first.
        quote!(&#PRIVATE::own_cache(&(#expr)))
    } else {
        quote!(&(#expr))
    }
}

/// The spans of the first and last tokens of `tokens`. An expression whose first token has the
/// first span and whose last token has the last one is reported by rustc over the whole range,
/// e.g. all of `Result<Customer, String>` (a single `Span` covers one token on stable).
pub(crate) fn span_range(tokens: &impl ToTokens) -> (Span, Span) {
    let mut first = None;
    let mut last = None;
    for tt in tokens.to_token_stream() {
        first.get_or_insert(tt.span());
        last = Some(tt.span());
    }
    let first = first.unwrap_or_else(Span::call_site);
    (first, last.unwrap_or(first))
}

/// `expr`, wrapped so that rustc reports it over `range`: `match () { () => expr }` with the
/// `match` on the first span and the braces on the last. (A method call over the range would
/// do too, but rustc then suggests removing the method call.)
pub(crate) fn ranged(range: (Span, Span), expr: TokenStream) -> TokenStream {
    let keyword = Ident::new("match", range.0);
    let mut arms = Group::new(Delimiter::Brace, quote!(() => #expr));
    arms.set_span(range.1);
    quote!(#keyword () #arms)
}

/// `tokens` (a path) with its first token spanned at `range.0` and the rest at `range.1`: rustc
/// reports what concerns the path (a bound of the function it names that the call does not
/// meet) over the range. The spans are the user's (a call-site span located there makes rustc
/// draw the attribute's expansion over the error as well); the paths it is used on are
/// absolute, so no name of the user's can capture them.
pub(crate) fn respanned(range: (Span, Span), tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, mut tt)| {
            tt.set_span(if i == 0 { range.0 } else { range.1 });
            tt
        })
        .collect()
}

/// `(&&&&&Probe::<R>::NEW).shape()`, reported over `range`; needs the shape traits in scope (see
/// [`shape_traits`]).
fn shape_probe(ret: &TokenStream, range: (Span, Span)) -> TokenStream {
    ranged(
        range,
        quote!((&&&&&#PRIVATE::autoref::Probe::<#ret>::NEW).shape()),
    )
}

/// Brings the traits of [`shape_probe`] into scope.
fn shape_traits() -> TokenStream {
    quote! {
        #[allow(unused_imports)]
        use #PRIVATE::autoref::traits::*;
    }
}

/// tracing-attributes' fake return edge: gives the body's async block its return type
/// before the body is checked, so that `?` and inference behave as in the original function.
/// It is spanned on the declared return type, so that a type error in the body says "return
/// type inferred to be `u64` here" about the signature, not about the attribute.
fn fake_return(ret: &Option<Type>) -> TokenStream {
    let (ret, (first, last)) = match ret {
        Some(ty) => (quote!(#ty), span_range(ty)),
        None => (quote!(()), (Span::call_site(), Span::call_site())),
    };
    let value = Ident::new("__cache_fake_return", last);
    let return_token = Ident::new("return", first);
    quote! {
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value)]
        if false {
            let #value: #ret = loop {};
            #return_token #value;
        }
    }
}

/// `&value.field.sub`, spanned on the template so that type errors point at it. The fields
/// get the macro's hygiene at the template's location: rustc then still reports a missing
/// field on the template, without suggesting to replace the whole template by a field name.
fn field_path(base: &Ident, fields: &[String], span: Span) -> TokenStream {
    let mut base = base.clone();
    base.set_span(span);
    let field_span = Span::mixed_site().located_at(span);
    let members = fields.iter().map(|f| match f.parse::<usize>() {
        Ok(i) => {
            let index = syn::Index {
                index: i as u32,
                span: field_span,
            };
            quote_spanned!(span=> .#index)
        }
        Err(_) => {
            let ident = Ident::new(f, field_span);
            quote_spanned!(span=> .#ident)
        }
    });
    quote_spanned!(span=> (&&#PRIVATE::autoref::KeyArgProbe(&#base #(#members)*)).__cache_key_arg())
}

/// `&arg.field` for every placeholder, in template order (through `autoref::KeyArgProbe`, which
/// picks the `fmt`-free path for strings and integers): the flat list the runtime renders keys
/// and tags from.
fn placeholder_values(
    args: &crate::valid::TemplateArgs,
    sig: &crate::signature::Signature,
) -> Vec<TokenStream> {
    args.refs
        .iter()
        .map(|r| {
            let ident = sig.args[args.templated[r.slot]]
                .ident
                .as_ref()
                .expect("templated arguments are named");
            field_path(ident, &r.fields, r.span)
        })
        .collect()
}
