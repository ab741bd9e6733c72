//! `#[cached]`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Type};

use super::self_rewrite::{rename_self, SELF_CLONE};
use super::{
    cache_ref, fake_return, method_name, placeholder_values, ranged, shape_probe, shape_traits,
    span_range,
};
use crate::attr::{ResultTags, Shares};
use crate::private::PRIVATE;
use crate::signature::Receiver;
use crate::valid::{CachedPlan, Length};

pub(crate) fn cached(item: &ItemFn, plan: &CachedPlan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let site = site(item, plan);
    let options = options(plan);
    if let Some(batch) = &plan.batch {
        return super::batch::cached(item, plan, batch, site, options);
    }
    let cache = cache_ref(&plan.cache, plan.sig.receiver);
    let ret = &plan.ret;
    let ret_tokens = quote!(#ret);
    let shape = shape_probe(&ret_tokens, span_range(ret));
    let shape_traits = shape_traits();
    let dispatch = dispatch(&ret_tokens, span_range(ret));
    let return_type = ranged(
        span_range(ret),
        quote!(::core::marker::PhantomData::<#ret_tokens>),
    );
    let values = placeholder_values(&plan.args, &plan.sig);
    let enabled = enabled(plan);

    // A blocking function drives the same core on its own thread, over the in-process tier.
    let (lookup, finish) = if plan.blocking {
        (
            quote!(__cache_lookup_blocking),
            quote!(#PRIVATE::block_on(__cache_loaded)),
        )
    } else {
        (quote!(__cache_lookup), quote!(__cache_loaded.await))
    };
    let select = quote!(#PRIVATE::autoref::Select::<#ret_tokens, _>);
    let step = quote!(#PRIVATE::autoref::Step);
    let body = body(plan, block);
    let load = match plan.swr {
        None => quote! {
            #PRIVATE::Borrowed(async move {
                #body
            })
        },
        Some((_, swr_span)) => detachable(item, plan, swr_span),
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #site
            #shape_traits
            #dispatch
            let __cache_shape = #shape;
            (&&#select::new(&__cache_shape))
                .__cache_return_check()
                .__cache_return_type_must_be_send_and_static(#return_type);
            let __cache_tag = (&&#select::new(&__cache_shape)).__cache_select();
            let __cache_pending = match __cache_tag.#lookup(
                &__CACHE_SITE,
                #cache,
                &[#(#values),*],
                __cache_shape,
                #enabled
            ) {
                #step::Hit(__cache_value) => return __cache_value,
                #step::Miss(__cache_pending) => __cache_pending,
            };
            let __cache_loaded = __cache_tag
                .__cache_load(
                    __cache_value_type,
                    __cache_pending,
                    __cache_shape,
                    #options,
                    #load,
                );
            #finish
        }
    }
}

/// The static descriptor of the call site, `__CACHE_SITE`.
fn site(item: &ItemFn, plan: &CachedPlan) -> TokenStream {
    let name = method_name(&plan.name, item);
    // The key space: the method's own, or the one it shares.
    let space = match &plan.shares {
        None => name.clone(),
        Some(Shares::Name(lit)) => quote!(#lit),
        Some(Shares::Method(method)) => {
            let method = method.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #method))
        }
    };
    let key = plan.key.to_runtime();
    let tags = plan.tags.iter().map(|t| t.to_runtime());
    let (jitter, beta) = (plan.jitter_ms, plan.beta);
    // A computed TTL's fallback, and no stale window when a computed one is refused.
    let ttl = match &plan.ttl {
        Length::Fixed(ms) => quote!(#ms),
        Length::FromResult(_) => quote!(#PRIVATE::COMPUTED_TTL_FALLBACK_MS),
    };
    let swr = match &plan.swr {
        Some((Length::Fixed(ms), _)) => *ms,
        _ => 0,
    };
    let lock = plan.lock_ms;
    let cache_none = plan.skip_none.is_none();
    let version = plan.version;
    quote! {
        static __CACHE_SITE: #PRIVATE::CachedSite =
            #PRIVATE::CachedSite {
                name: #name,
                scope: #PRIVATE::fnv1a(#space.as_bytes()),
                key: #key,
                tags: &[#(#tags),*],
                ttl_ms: #ttl,
                jitter_ms: #jitter,
                swr_ms: #swr,
                lock_ms: #lock,
                beta: #beta,
                cache_none: #cache_none,
                version: #version,
                counters: #PRIVATE::CountersSlot::NEW,
            };
    }
}

/// `condition`, as a `bool` expression.
pub(super) fn enabled(plan: &CachedPlan) -> TokenStream {
    match &plan.condition {
        // An `if`, so that a non-`bool` condition is reported on it alone.
        Some(cond) => quote!(if #cond { true } else { false }),
        None => quote!(true),
    }
}

/// The per-call options that depend on the value type, as a `#PRIVATE::Options`.
fn options(plan: &CachedPlan) -> TokenStream {
    let ttl_of = computed(Some(&plan.ttl), quote!(computed_ttl));
    let swr_of = computed(
        plan.swr.as_ref().map(|(length, _)| length),
        quote!(computed_swr),
    );
    let unless = match &plan.unless {
        Some(expr) => quote!(::core::option::Option::Some(|result: &_| -> bool { #expr })),
        None => quote!(::core::option::Option::None),
    };
    let skip_none = match plan.skip_none {
        Some(span) => {
            let private = PRIVATE.at(span);
            quote_spanned! {span=>
                ::core::option::Option::Some(<_ as #private::MaybeNone>::is_none)
            }
        }
        None => quote!(::core::option::Option::None),
    };
    let result_tags = match &plan.result_tags {
        None => quote!(::core::option::Option::None),
        Some(ResultTags::Entity(span)) => {
            let private = PRIVATE.at(*span);
            quote_spanned! {*span=>
                ::core::option::Option::Some(#private::entity_tags)
            }
        }
        Some(ResultTags::Expr(expr)) => quote! {
            ::core::option::Option::Some(
                |result: &_, __cache_sink: &mut #PRIVATE::TagSink| {
                    __cache_sink.extend(#expr)
                }
            )
        },
    };
    quote! {
        #PRIVATE::Options {
            unless: #unless,
            skip_none: #skip_none,
            result_tags: #result_tags,
            ttl: #ttl_of,
            swr: #swr_of,
        }
    }
}

/// The runtime's check of a TTL or stale window computed from the value (`check` names it),
/// as an `Options` field; `None` for a fixed one. Type errors in the expression are reported
/// on it.
fn computed(length: Option<&Length>, check: TokenStream) -> TokenStream {
    let Some(Length::FromResult(expr)) = length else {
        return quote!(::core::option::Option::None);
    };
    let span = expr.span();
    let check = quote_spanned!(span=> #PRIVATE::#check(#expr));
    quote! {
        ::core::option::Option::Some(|result: &_| -> #PRIVATE::Computed {
            let _ = &result;
            #check
        })
    }
}

/// The checks that route a call to the runtime (`cache_runtime::__private_0_1_0::autoref`), or,
/// when the value type cannot be cached, to a stand-in that compiles without further errors:
/// `value_check` reports `CacheValue`'s message over the return type, and nothing else repeats
/// it.
fn dispatch(ret: &TokenStream, range: (Span, Span)) -> TokenStream {
    let value_type = ranged(
        range,
        quote! {
            (&&#PRIVATE::autoref::ValueProbe::<#ret>(::core::marker::PhantomData))
                .__cache_value()
        },
    );
    quote! {
        let __cache_value_type = #PRIVATE::autoref::value_check(#value_type);
    }
}

/// The `swr` body: a closure that clones the receiver and owns every borrowed argument, so
/// that the refresh can run after the call returned.
fn detachable(item: &ItemFn, plan: &CachedPlan, swr_span: Span) -> TokenStream {
    let self_clone = format_ident!("{}", SELF_CLONE);
    let (clone_self, borrow_self, block) = if plan.sig.receiver.is(Receiver::Ref) {
        // The receiver type, named so that rustc reports our `DetachableReceiver` message
        // rather than suggesting to borrow `swr`.
        let receiver = receiver_type(item).map(|ty| respan(ty.to_token_stream(), swr_span));
        let receiver = receiver.map(|ty| quote!(::<#ty>));
        (
            {
                let private = PRIVATE.at(swr_span);
                quote_spanned! {swr_span=>
                    let #self_clone = #private::clone_receiver #receiver (self);
                }
            },
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
            own.push(quote!(let #ident = #PRIVATE::own(#ident);));
            reborrow.push(quote! {
                let #ident: &#referent = ::core::borrow::Borrow::<#referent>::borrow(&#ident);
            });
        }
    }
    let body = body(plan, &block);
    quote! {
        #PRIVATE::Detachable(move || {
            #clone_self
            #(#own)*
            async move {
                #borrow_self
                #(#reborrow)*
                #body
            }
        })
    }
}

/// The method's block as the load's async block runs it. A blocking function's runs in a
/// closure, so that `.await` in it is an error, as in any `fn`, instead of a future the
/// calling thread would have to drive.
pub(super) fn body(plan: &CachedPlan, block: &syn::Block) -> TokenStream {
    let fake = fake_return(&Some(plan.ret.clone()));
    if plan.blocking {
        quote! {
            (|| {
                #fake
                #block
            })()
        }
    } else {
        quote! {
            #fake
            #block
        }
    }
}

/// `T` of a `&T` receiver (`&self` is `&Self`).
fn receiver_type(item: &ItemFn) -> Option<&Type> {
    item.sig.inputs.iter().find_map(|input| match input {
        FnArg::Receiver(r) => match &*r.ty {
            Type::Reference(t) => Some(&*t.elem),
            _ => None,
        },
        FnArg::Typed(_) => None,
    })
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                TokenTree::Group(group)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
