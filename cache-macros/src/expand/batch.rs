//! `#[cached(batch = id in ids)]`: the ids are looked up one by one in process, and the rest
//! go to the runtime with the body as a closure of the ids that missed.

use proc_macro2::{Delimiter, Group, Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::{ItemFn, Type};

use super::cached::{body, enabled};
use super::{cache_ref, placeholder_values, ranged, respanned, shape_traits, span_range};
use crate::private::PRIVATE;
use crate::valid::{BatchPlan, CachedPlan};

pub(crate) fn cached(
    item: &ItemFn,
    plan: &CachedPlan,
    batch: &BatchPlan,
    site: TokenStream,
    options: TokenStream,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let BatchPlan {
        item: id,
        arg,
        arg_ty,
        id_ty,
    } = batch;
    let cache = cache_ref(&plan.cache, plan.sig.receiver);
    let ret = &plan.ret;
    let traits = shape_traits();
    // Reported over the return type when it is not a map of ids.
    let serde = ranged(
        span_range(ret),
        quote!((&&#PRIVATE::autoref::BatchProbe::<#ret>::NEW).__cache_batch_serde()),
    );
    let values = placeholder_values(&plan.args, &plan.sig);
    let enabled = enabled(plan);
    // The body sees the ids that missed under the argument's name and type.
    let missed = match arg_ty {
        Type::Reference(_) => quote!(&__cache_missed),
        _ => quote!(__cache_missed),
    };
    let body = body(plan, block);
    // Reported over the return type: a return type that is not a map of the ids, by the check
    // (its path and its parentheses are spanned there); anything the cached path needs of a
    // map's value, by the look-up. A return type that is no map selects a stand-in path,
    // which adds no error of its own.
    let range = span_range(ret);
    let check_fn = respanned(range, quote!(#PRIVATE::batch_return_check));
    let mut check_args = Group::new(Delimiter::Parenthesis, TokenStream::new());
    check_args.set_span(range.1);
    // The turbofish's own tokens are spanned there too: rustc may point at the whole path.
    let generics = quote_spanned!(range.1=> ::<#ret, #id_ty>);
    let check = ranged(range, quote!(#check_fn #generics #check_args));
    let select = quote!((&&&#PRIVATE::autoref::BatchSelect::<#ret, #id_ty>::NEW).__cache_batch());
    let lookup_method = Ident::new("lookup", range.0);
    let mut lookup_args = Group::new(
        Delimiter::Parenthesis,
        quote! {
            &__CACHE_SITE,
            #cache,
            #arg.iter(),
            |#id: &#id_ty, __cache_render| __cache_render(&[#(#values),*]),
            __cache_serde,
            #enabled,
        },
    );
    lookup_args.set_span(range.1);
    let lookup = ranged(range, quote!(__cache_batch.#lookup_method #lookup_args));
    let batch_lookup = respanned(range, quote!(#PRIVATE::BatchLookup));
    // The pending batch's type is checked where it is matched and bound: there too.
    let hit = respanned(range, quote!(#PRIVATE::BatchLookup::Hit));
    let miss = respanned(range, quote!(#PRIVATE::BatchLookup::Miss));
    let pending = Ident::new("__cache_pending", range.0);
    let load_method = Ident::new("load", range.0);
    let load = ranged(
        span_range(ret),
        quote! {
            #pending.#load_method(#options, |__cache_missed: ::std::vec::Vec<#id_ty>| async move {
                let #arg: #arg_ty = #missed;
                #body
            })
        },
    );
    quote! {
        #(#attrs)*
        #vis #sig {
            #site
            #traits
            #check;
            let __cache_serde = #serde;
            let __cache_batch = #select;
            let __cache_step: #batch_lookup<#ret, _> = #lookup;
            let #pending = match __cache_step {
                #hit(__cache_value) => return __cache_value,
                #miss(#pending) => #pending,
            };
            #load.await
        }
    }
}
