//! The attribute macros of [`cache-runtime`](https://docs.rs/cache-runtime): `#[cached]` and
//! `#[invalidates]`. Depend on `cache-runtime`, which re-exports them and documents every
//! argument; the generated code names only the runtime's private module (`private.rs`).
//!
//! Each macro parses its arguments (`attr`), checks them against the function (`valid`) and
//! generates one static descriptor plus the runtime calls (`expand`). Every error the macro
//! finds is reported, each on its own token; the function is still emitted unchanged next to
//! the errors, so the rest of the crate keeps type-checking. What the runtime decides (which
//! filters exist, which characters separate a placeholder) is checked by the compiler in the
//! generated code, so it is reported once the macro found nothing else.

mod attr;
mod duration;
mod errors;
mod expand;
mod private;
mod signature;
mod template;
mod valid;

use proc_macro::TokenStream;
use quote::ToTokens;
use syn::ItemFn;

use errors::Errors;

/// Caches an `async fn`'s result. See `cache_runtime::cached` for the arguments.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let item_tokens: proc_macro2::TokenStream = item.into();
    let Ok(item) = syn::parse2::<ItemFn>(item_tokens.clone()) else {
        return with_error(
            item_tokens,
            "#[cached] goes on an `async fn` (a free function or a method)",
        );
    };
    let parsed = attr::parse(args.into(), &mut errors);
    let plan = valid::cached(&item, parsed, &mut errors);
    match plan {
        Some(plan) if errors.is_empty() => expand::cached(&item, &plan).into(),
        _ => fallback(&item, &errors),
    }
}

/// Invalidates tags and keys after an `async fn` succeeds. See `cache_runtime::invalidates`.
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let item_tokens: proc_macro2::TokenStream = item.into();
    let Ok(item) = syn::parse2::<ItemFn>(item_tokens.clone()) else {
        return with_error(
            item_tokens,
            "#[invalidates] goes on an `async fn` (a free function or a method)",
        );
    };
    let parsed = attr::parse(args.into(), &mut errors);
    let plan = valid::invalidates(&item, parsed, &mut errors);
    match plan {
        Some(plan) if errors.is_empty() => expand::invalidates(&item, &plan).into(),
        _ => fallback(&item, &errors),
    }
}

/// The original function, untouched, and the errors.
fn fallback(item: &ItemFn, errors: &Errors) -> TokenStream {
    let mut out = item.to_token_stream();
    out.extend(errors.to_compile_errors());
    out.into()
}

fn with_error(item: proc_macro2::TokenStream, message: &str) -> TokenStream {
    let mut out = item;
    out.extend(syn::Error::new(proc_macro2::Span::call_site(), message).to_compile_error());
    out.into()
}
