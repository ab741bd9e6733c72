//! `#[cached]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ItemFn;

use super::self_rewrite::{rename_self, SELF_CLONE};
use super::{cache_ref, fake_return, field_path, method_name, shape};
use crate::attr::ResultTags;
use crate::signature::Receiver;
use crate::valid::CachedPlan;

pub(crate) fn cached(item: &ItemFn, plan: &CachedPlan) -> TokenStream {
    let ItemFn { attrs, vis, sig, block } = item;
    let name = method_name(&plan.name, item);
    let key = plan.key.to_runtime();
    let tags = plan.tags.iter().map(|t| t.to_runtime());
    let (ttl, jitter, beta) = (plan.ttl_ms, plan.jitter_ms, plan.beta);
    let swr = plan.swr_ms.map_or(0, |(ms, _)| ms);
    let cache_none = plan.skip_none.is_none();
    let cache = cache_ref(&plan.cache, plan.sig.receiver);
    let ret = &plan.ret;
    let ret_tokens = quote!(#ret);
    let shape = shape(&ret_tokens);

    let values = plan.args.refs.iter().map(|r| {
        let ident = plan.sig.args[plan.args.templated[r.slot]].ident.clone().expect("templated arguments are named");
        field_path(quote!(#ident), &r.fields, r.span)
    });
    let enabled = match &plan.condition {
        Some(cond) => quote!(#cond),
        None => quote!(true),
    };
    let unless = match &plan.unless {
        Some(expr) => quote!(::core::option::Option::Some(|result: &_| -> bool { #expr })),
        None => quote!(::core::option::Option::None),
    };
    let skip_none = match plan.skip_none {
        Some(span) => quote_spanned!(span=> ::core::option::Option::Some(<_ as ::cache_runtime::__private::MaybeNone>::is_none)),
        None => quote!(::core::option::Option::None),
    };
    let result_tags = match &plan.result_tags {
        None => quote!(::core::option::Option::None),
        Some(ResultTags::Entity(span)) => {
            quote_spanned!(*span=> ::core::option::Option::Some(::cache_runtime::__private::entity_tags))
        }
        Some(ResultTags::Expr(expr)) => quote! {
            ::core::option::Option::Some(|result: &_, __cache_sink: &mut ::cache_runtime::__private::TagSink| {
                __cache_sink.extend(#expr)
            })
        },
    };

    let fake = fake_return(&Some(plan.ret.clone()));
    let load = match plan.swr_ms {
        None => quote! {
            ::cache_runtime::__private::Borrowed(async move {
                #fake
                #block
            })
        },
        Some((_, swr_span)) => detachable(item, plan, swr_span),
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            static __CACHE_SITE: ::cache_runtime::__private::CachedSite = ::cache_runtime::__private::CachedSite {
                name: #name,
                scope: ::cache_runtime::__private::fnv1a(#name.as_bytes()),
                key: #key,
                tags: &[#(#tags),*],
                ttl_ms: #ttl,
                jitter_ms: #jitter,
                swr_ms: #swr,
                beta: #beta,
                cache_none: #cache_none,
                counters: ::cache_runtime::__private::CountersSlot::NEW,
            };
            let __cache_pending = match ::cache_runtime::__private::lookup(&__CACHE_SITE, #cache, &[#(#values),*], #shape, #enabled) {
                ::cache_runtime::__private::Lookup::Hit(__cache_value) => return __cache_value,
                ::cache_runtime::__private::Lookup::Miss(__cache_pending) => __cache_pending,
            };
            __cache_pending
                .load(
                    #shape,
                    ::cache_runtime::__private::Options {
                        unless: #unless,
                        skip_none: #skip_none,
                        result_tags: #result_tags,
                    },
                    #load,
                )
                .await
        }
    }
}

/// The `swr` body: a closure that clones the receiver and owns every borrowed argument, so
/// that the refresh can run after the call returned.
fn detachable(item: &ItemFn, plan: &CachedPlan, swr_span: Span) -> TokenStream {
    let self_clone = format_ident!("{}", SELF_CLONE);
    let (clone_self, borrow_self, block) = if plan.sig.receiver.is(Receiver::Ref) {
        (
            quote_spanned!(swr_span=> let #self_clone = ::cache_runtime::__private::clone_receiver(self);),
            quote!(let #self_clone = &#self_clone;),
            rename_self(&item.block),
        )
    } else {
        (quote!(), quote!(), (*item.block).clone())
    };
    let mut own = Vec::new();
    let mut reborrow = Vec::new();
    for arg in &plan.sig.args {
        let Some(ident) = &arg.ident else { continue };
        if let Some((referent, _)) = arg.referent() {
            own.push(quote!(let #ident = ::cache_runtime::__private::own(#ident);));
            reborrow.push(quote!(let #ident: &#referent = ::core::borrow::Borrow::<#referent>::borrow(&#ident);));
        }
    }
    let fake = fake_return(&Some(plan.ret.clone()));
    quote! {
        ::cache_runtime::__private::Detachable(move || {
            #clone_self
            #(#own)*
            async move {
                #borrow_self
                #(#reborrow)*
                #fake
                #block
            }
        })
    }
}
