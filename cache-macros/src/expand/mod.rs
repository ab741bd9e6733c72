//! Code generation from checked plans. The expansion is one static descriptor and one runtime
//! call; everything else lives in `cache_runtime`.

mod cached;
mod invalidates;
mod self_rewrite;

pub(crate) use cached::cached;
pub(crate) use invalidates::invalidates;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Expr, Ident, ItemFn, LitStr, Type};

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
        quote!(&::cache_runtime::__private::own_cache(&(#expr)))
    } else {
        quote!(&(#expr))
    }
}

/// `(&&Probe::<R>::NEW).shape()`, with the shape traits in scope.
fn shape(ret: &TokenStream) -> TokenStream {
    quote! {
        {
            #[allow(unused_imports)]
            use ::cache_runtime::__private::{OwnErrorShape as _, SharedErrorShape as _, WholeShape as _};
            (&&::cache_runtime::__private::Probe::<#ret>::NEW).shape()
        }
    }
}

/// tracing-attributes' fake return edge: gives the body's async block its return type
/// before the body is checked, so that `?` and inference behave as in the original function.
fn fake_return(ret: &Option<Type>) -> TokenStream {
    let ret = match ret {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    quote! {
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::let_unit_value)]
        if false {
            let __cache_fake_return: #ret = loop {};
            return __cache_fake_return;
        }
    }
}

/// `&value.field.sub`, spanned on the template so that type errors point at it.
fn field_path(base: TokenStream, fields: &[String], span: Span) -> TokenStream {
    let members = fields.iter().map(|f| match f.parse::<usize>() {
        Ok(i) => {
            let index = syn::Index { index: i as u32, span };
            quote_spanned!(span=> .#index)
        }
        Err(_) => {
            let ident = Ident::new(f, span);
            quote_spanned!(span=> .#ident)
        }
    });
    quote_spanned!(span=> &#base #(#members)*)
}
