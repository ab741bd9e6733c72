//! `#[invalidates]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use super::{
    cache_ref, fake_return, method_name, placeholder_values, shape_probe, shape_traits, span_range,
};
use crate::private::PRIVATE;
use crate::valid::InvalidatesPlan;

pub(crate) fn invalidates(item: &ItemFn, plan: &InvalidatesPlan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let name = method_name(&plan.name, item);
    let tags = plan.tags.iter().map(|t| t.to_runtime());
    let keys = plan.keys.iter().map(|t| t.to_runtime());
    let cache = cache_ref(&plan.cache, plan.sig.receiver);
    let values = placeholder_values(&plan.args, &plan.sig);
    // The dispatch traits, for the shape probe and the placeholders' values.
    let traits = shape_traits();
    let shape = match &plan.ret {
        Some(ret) => shape_probe(&quote!(#ret), span_range(ret)),
        None => quote!(#PRIVATE::Whole),
    };
    // An `impl Trait` return cannot be named: let the body infer it.
    let fake = if plan.sig.ret.is_some() && plan.ret.is_none() {
        quote!()
    } else {
        fake_return(&plan.ret)
    };
    let call = if plan.blocking {
        quote! {
            #PRIVATE::invalidates_blocking(
                &__CACHE_SITE,
                #cache,
                __cache_tags,
                #shape,
                || {
                    #fake
                    #block
                },
            )
        }
    } else {
        quote! {
            #PRIVATE::invalidates(
                &__CACHE_SITE,
                #cache,
                __cache_tags,
                #shape,
                async move {
                    #fake
                    #block
                },
            )
            .await
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #traits
            static __CACHE_SITE: #PRIVATE::InvalidatesSite =
                #PRIVATE::InvalidatesSite {
                    name: #name,
                    tags: &[#(#tags),*],
                    keys: &[#(#keys),*],
                    counters: #PRIVATE::CountersSlot::NEW,
                };
            let __cache_tags =
                #PRIVATE::render_invalidation(&__CACHE_SITE, &[#(#values),*]);
            #call
        }
    }
}
