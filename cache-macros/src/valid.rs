//! Checks the parsed arguments against the function and produces what `expand` generates from.
//! Every problem is reported, each on its own token.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, LitStr, Type};

use crate::attr::{CachedArgs, InvalidatesArgs, ResultTags};
use crate::errors::Errors;
use crate::signature::{mentions_impl_trait, Receiver, Signature};
use crate::template::{Placeholder, Template};

/// Where a placeholder's value comes from: the `slot`-th templated argument, then `fields`.
pub(crate) struct ArgRef {
    pub(crate) slot: usize,
    pub(crate) fields: Vec<String>,
    pub(crate) span: Span,
}

/// The arguments the templates use, in tuple order, and every placeholder's source in
/// template order.
pub(crate) struct TemplateArgs {
    /// Indices into `Signature::args`.
    pub(crate) templated: Vec<usize>,
    pub(crate) refs: Vec<ArgRef>,
}

pub(crate) struct CachedPlan {
    pub(crate) sig: Signature,
    pub(crate) ret: Type,
    pub(crate) name: Option<LitStr>,
    pub(crate) key: Template,
    pub(crate) tags: Vec<Template>,
    pub(crate) args: TemplateArgs,
    pub(crate) ttl_ms: u64,
    pub(crate) jitter_ms: u64,
    pub(crate) swr_ms: Option<(u64, Span)>,
    pub(crate) beta: f64,
    pub(crate) skip_none: Option<Span>,
    pub(crate) cache: Option<Expr>,
    pub(crate) condition: Option<Expr>,
    pub(crate) unless: Option<Expr>,
    pub(crate) result_tags: Option<ResultTags>,
}

pub(crate) struct InvalidatesPlan {
    pub(crate) sig: Signature,
    pub(crate) ret: Option<Type>,
    pub(crate) name: Option<LitStr>,
    pub(crate) tags: Vec<Template>,
    pub(crate) keys: Vec<Template>,
    pub(crate) args: TemplateArgs,
    pub(crate) cache: Option<Expr>,
}

fn check_async(item: &ItemFn, attribute: &str, errors: &mut Errors) {
    if item.sig.asyncness.is_none() {
        errors.error(
            item.sig.fn_token,
            format!("#[{attribute}] works on `async fn` only: the cache is asynchronous. Write `async fn {}`", item.sig.ident),
        );
    }
}

fn check_receiver(sig: &Signature, cache: &Option<Expr>, attribute: &str, errors: &mut Errors) {
    match sig.receiver {
        Receiver::Value(span) => errors.error_at(
            span,
            format!("#[{attribute}] does not support `self` by value: the body would consume the repository. Take `&self`"),
        ),
        Receiver::None if cache.is_none() => errors.error_at(
            Span::call_site(),
            format!("#[{attribute}] on a function without `self` needs `cache = <expr>` naming the cache, e.g. `cache = CACHE` for a `static CACHE: LazyLock<Cache>`"),
        ),
        _ => {}
    }
}

/// Resolves every placeholder of `templates` to an argument.
fn resolve(templates: &[&Template], sig: &Signature, errors: &mut Errors) -> TemplateArgs {
    let mut out = TemplateArgs { templated: Vec::new(), refs: Vec::new() };
    for template in templates {
        for placeholder in template.placeholders() {
            if let Some(r) = resolve_one(placeholder, template, sig, &mut out.templated, errors) {
                out.refs.push(r);
            }
        }
    }
    out
}

fn resolve_one(
    placeholder: &Placeholder,
    template: &Template,
    sig: &Signature,
    templated: &mut Vec<usize>,
    errors: &mut Errors,
) -> Option<ArgRef> {
    let Some(index) = sig.position(&placeholder.root) else {
        errors.error(
            &template.lit,
            format!("unknown placeholder `{}`: `{}` is not an argument of this function; {}", placeholder.text, placeholder.root, sig.arg_names()),
        );
        return None;
    };
    let slot = match templated.iter().position(|i| *i == index) {
        Some(slot) => slot,
        None => {
            templated.push(index);
            templated.len() - 1
        }
    };
    Some(ArgRef { slot, fields: placeholder.fields.clone(), span: template.lit.span() })
}

pub(crate) fn cached(item: &ItemFn, args: CachedArgs, errors: &mut Errors) -> Option<CachedPlan> {
    let sig = Signature::of(item);
    check_async(item, "cached", errors);
    check_receiver(&sig, &args.cache, "cached", errors);

    let ret = match &sig.ret {
        None => {
            errors.error(
                &item.sig,
                "#[cached] on a function returning `()` caches nothing; return the value to cache, or use #[invalidates] for a write",
            );
            None
        }
        Some(ty) if mentions_impl_trait(ty) => {
            errors.error(ty, "#[cached] needs a nameable return type to cache; `impl Trait` cannot be stored. Return a concrete type");
            None
        }
        Some(ty) => Some(ty.clone()),
    };

    let key = match &args.key {
        Some(lit) => Some(Template::parse(lit, "key", errors)),
        None => {
            errors.error_at(Span::call_site(), "#[cached] needs `key = \"...\"`, e.g. `key = \"customer.{id}\"`");
            None
        }
    };
    let tags: Vec<Template> = args.tags.iter().map(|t| Template::parse(t, "tag", errors)).collect();

    let ttl_ms = match args.ttl {
        None => {
            errors.error_at(Span::call_site(), "#[cached] needs `ttl`, e.g. `ttl = 600` (seconds) or `ttl = \"10m\"`");
            0
        }
        Some(ttl) if ttl.value == 0 => {
            errors.error_at(ttl.span, "`ttl` must be greater than zero: an entry that expires at once caches nothing");
            0
        }
        Some(ttl) => ttl.value,
    };
    let jitter_ms = match args.jitter {
        Some(j) if ttl_ms > 0 && j.value >= ttl_ms => {
            errors.error_at(j.span, "`jitter` must be smaller than `ttl`: it is taken off the TTL at random");
            0
        }
        Some(j) => j.value,
        None => 0,
    };
    let swr_ms = match &args.swr {
        Some(swr) => match swr.window {
            Some(w) if w.value == 0 => {
                errors.error_at(w.span, "`swr = 0` serves nothing stale; remove `swr` instead");
                None
            }
            Some(w) => Some((w.value, swr.span)),
            None => Some((ttl_ms, swr.span)),
        },
        None => None,
    };
    if let Some((_, span)) = swr_ms {
        if sig.receiver.is(Receiver::RefMut) {
            errors.error_at(span, "`swr` refreshes in the background and cannot hold `&mut self`; take `&self`");
        }
        for arg in &sig.args {
            if arg.referent().is_some_and(|(_, mutable)| mutable) {
                errors.error_at(arg.span, "`swr` refreshes in the background and cannot hold a `&mut` argument");
            }
            if arg.ident.is_none() {
                errors.error_at(arg.span, "`swr` needs plain `name: Type` arguments (no patterns) to own them in the background refresh");
            }
        }
    }

    let mut plan_args = None;
    if let Some(key) = &key {
        let mut all: Vec<&Template> = vec![key];
        all.extend(tags.iter());
        let resolved = resolve(&all, &sig, errors);
        // Every argument must shape the key, unless ignored.
        let in_key: Vec<&str> = key.placeholders().map(|p| p.root.as_str()).collect();
        for ignored in &args.ignore {
            if sig.position(&ignored.to_string()).is_none() {
                errors.error(ignored, format!("`ignore` names `{ignored}`, which is not an argument; {}", sig.arg_names()));
            } else if in_key.contains(&ignored.to_string().as_str()) {
                errors.error(ignored, format!("`{ignored}` is in the key; remove it from `ignore`"));
            }
        }
        for arg in &sig.args {
            let Some(ident) = &arg.ident else {
                errors.error_at(arg.span, "#[cached] needs every argument to be a plain `name: Type` so that it can be part of the key");
                continue;
            };
            let name = ident.to_string();
            if !in_key.contains(&name.as_str()) && !args.ignore.iter().any(|i| *i == name) {
                errors.error(
                    &key.lit,
                    format!("argument `{name}` is missing from the key, so calls differing only in `{name}` would share an entry; add `{{{name}}}` to the key, or `ignore = [{name}]` if it does not affect the result"),
                );
            }
        }
        plan_args = Some(resolved);
    }

    let skip_none = match &args.cache_none {
        Some(b) if !b.value => Some(b.span),
        _ => None,
    };

    Some(CachedPlan {
        sig,
        ret: ret?,
        name: args.name,
        key: key?,
        tags,
        args: plan_args?,
        ttl_ms,
        jitter_ms,
        swr_ms,
        beta: args.beta.map_or(0.0, |(b, _)| b),
        skip_none,
        cache: args.cache,
        condition: args.condition,
        unless: args.unless,
        result_tags: args.result_tags,
    })
}

pub(crate) fn invalidates(item: &ItemFn, args: InvalidatesArgs, errors: &mut Errors) -> Option<InvalidatesPlan> {
    let sig = Signature::of(item);
    check_async(item, "invalidates", errors);
    check_receiver(&sig, &args.cache, "invalidates", errors);
    if args.tags.is_empty() && args.keys.is_empty() {
        errors.error_at(
            Span::call_site(),
            "#[invalidates] needs something to invalidate: `tags = [\"customer.{customer.id}\"]` and/or `keys = [\"customer.{id}\"]`",
        );
    }
    let tags: Vec<Template> = args.tags.iter().map(|t| Template::parse(t, "tag", errors)).collect();
    let keys: Vec<Template> = args.keys.iter().map(|t| Template::parse(t, "key", errors)).collect();
    let all: Vec<&Template> = tags.iter().chain(keys.iter()).collect();
    let resolved = resolve(&all, &sig, errors);
    let ret = sig.ret.clone().filter(|ty| !mentions_impl_trait(ty));
    let _ = item.span();
    Some(InvalidatesPlan { sig, ret, name: args.name, tags, keys, args: resolved, cache: args.cache })
}
