//! Checks the parsed arguments against the function and produces what `expand` generates from.
//! Every problem is reported, each on its own token.

use proc_macro2::Span;
use syn::{Expr, ItemFn, LitStr, Type};

use crate::attr::{Attr, CachedArgs, Duration, InvalidatesArgs, ResultTags, Shares};
use crate::errors::Errors;
use crate::signature::{borrowed_part, mentions_future, mentions_impl_trait, Receiver, Signature};
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
    pub(crate) ttl: Length,
    pub(crate) jitter_ms: u64,
    /// The stale window, and where `swr` is written.
    pub(crate) swr: Option<(Length, Span)>,
    pub(crate) lock_ms: u64,
    pub(crate) beta: f64,
    pub(crate) skip_none: Option<Span>,
    pub(crate) cache: Option<Expr>,
    pub(crate) condition: Option<Expr>,
    pub(crate) unless: Option<Expr>,
    pub(crate) result_tags: Option<ResultTags>,
    /// The value layout's version (0: not given, the cache's default applies).
    pub(crate) version: u32,
    /// A plain `fn`: the in-process tier only, driven on the calling thread.
    pub(crate) blocking: bool,
    /// `batch = id in ids`: one entry per id.
    pub(crate) batch: Option<BatchPlan>,
    /// `shares = ...`: the key space of another method.
    pub(crate) shares: Option<Shares>,
}

/// A batch method's argument of ids, as `batch = id in ids` names it.
pub(crate) struct BatchPlan {
    /// The name of one id in the templates (`id`).
    pub(crate) item: syn::Ident,
    /// The argument (`ids`) and its declared type (`&[String]`).
    pub(crate) arg: syn::Ident,
    pub(crate) arg_ty: Type,
    /// The type of one id (`String`).
    pub(crate) id_ty: Type,
}

/// A TTL or stale window: fixed, or computed from the value when it is stored.
#[derive(Clone)]
pub(crate) enum Length {
    /// In milliseconds.
    Fixed(u64),
    /// An expression over `result`, giving seconds or a `Duration`.
    FromResult(Expr),
}

pub(crate) struct InvalidatesPlan {
    pub(crate) sig: Signature,
    pub(crate) ret: Option<Type>,
    pub(crate) name: Option<LitStr>,
    pub(crate) tags: Vec<Template>,
    pub(crate) keys: Vec<Template>,
    pub(crate) args: TemplateArgs,
    pub(crate) cache: Option<Expr>,
    /// A plain `fn`: invalidates in process at once, the shared backend in the background.
    pub(crate) blocking: bool,
}

/// A plain `fn` is a blocking function: cached in process only (see `blocking.rs` in the
/// runtime).
fn is_blocking(item: &ItemFn) -> bool {
    item.sig.asyncness.is_none()
}

/// A plain `fn` that returns a future is asynchronous without `async` (`#[async_trait]`,
/// `-> impl Future`): the attribute would act when the future is made, not when it has run.
fn check_blocking_returns_no_future(item: &ItemFn, attribute: &str, errors: &mut Errors) {
    let syn::ReturnType::Type(_, ty) = &item.sig.output else {
        return;
    };
    if is_blocking(item) && mentions_future(ty) {
        errors.error(
            ty,
            format!(
                "#[{attribute}] on a plain `fn` caches a blocking function, but this one returns \
                 a future, which would be cached or invalidated before it runs; write \
                 `async fn {}` (without `#[async_trait]`: `async fn` in traits works)",
                item.sig.ident
            ),
        );
    }
}

/// `lock` coordinates instances through a shared backend, which a blocking function never
/// awaits.
fn check_lock_is_async(args: &CachedArgs, blocking: bool, errors: &mut Errors) {
    errors.at(args.lock.position());
    if let (true, Some(lock)) = (blocking, &args.lock.value) {
        errors.error_at(
            lock.span,
            "`lock` waits on other instances through the shared backend, which a blocking \
             function does not use (it caches in process only); remove `lock`, or make the \
             function `async`",
        );
    }
}

fn check_receiver(sig: &Signature, cache: &Option<Expr>, attribute: &str, errors: &mut Errors) {
    match sig.receiver {
        Receiver::Value(span) => errors.error_at(
            span,
            format!(
                "#[{attribute}] does not support `self` by value: the body would consume the \
                 repository. Take `&self`"
            ),
        ),
        Receiver::None if cache.is_none() => errors.error_at(
            Span::call_site(),
            format!(
                "#[{attribute}] on a function without `self` needs `cache = <expr>` naming the \
                 cache, e.g. `cache = CACHE` for a `static CACHE: LazyLock<Cache>`"
            ),
        ),
        _ => {}
    }
}

/// A name and a field to suggest for a pattern argument of type `ty`, taken whole.
fn whole_argument(ty: &Type) -> (&'static str, &'static str) {
    match ty {
        Type::Tuple(_) => ("point", "0"),
        _ => ("value", "field"),
    }
}

/// Resolves every placeholder of `templates` to an argument. `orders[i]` is the position of
/// the option `templates[i]` belongs to. The names of the arguments that unknown placeholders
/// of the first template were probably meant to be go to `meant`. `patterns_reported`: every
/// pattern argument is reported anyway, so a placeholder naming one of its bindings is not
/// reported again.
fn resolve(
    templates: &[&Template],
    orders: &[usize],
    sig: &Signature,
    patterns_reported: bool,
    meant: &mut Vec<String>,
    errors: &mut Errors,
) -> TemplateArgs {
    let mut out = TemplateArgs {
        templated: Vec::new(),
        refs: Vec::new(),
    };
    for (i, template) in templates.iter().enumerate() {
        errors.at(orders[i]);
        for placeholder in template.placeholders() {
            match resolve_one(
                placeholder,
                template,
                sig,
                patterns_reported,
                &mut out.templated,
                errors,
            ) {
                Ok(r) => out.refs.push(r),
                Err(Some(guess)) if i == 0 => meant.push(guess),
                Err(_) => {}
            }
        }
    }
    out
}

/// The argument of `placeholder`, or (after reporting it) the argument it was probably meant
/// to name.
fn resolve_one(
    placeholder: &Placeholder,
    template: &Template,
    sig: &Signature,
    patterns_reported: bool,
    templated: &mut Vec<usize>,
    errors: &mut Errors,
) -> Result<ArgRef, Option<String>> {
    let Some(index) = sig.position(&placeholder.root) else {
        if let Some(arg) = sig
            .args
            .iter()
            .find(|a| a.bindings.contains(&placeholder.root))
        {
            if !patterns_reported {
                let (name, field) = whole_argument(&arg.ty);
                let (text, root) = (&placeholder.text, &placeholder.root);
                let ty = quote::ToTokens::to_token_stream(&arg.ty);
                errors.error(
                    &template.lit,
                    format!(
                        "placeholder `{text}` names `{root}`, which a pattern argument binds: \
                         templates interpolate plain `name: Type` arguments; take that argument \
                         whole, e.g. `{name}: {ty}`, and write `{{{name}.{field}}}`",
                    ),
                );
            }
            return Err(None);
        }
        let (guess, hint) = sig.unknown_arg_hint(&placeholder.root);
        errors.error(
            &template.lit,
            format!(
                "unknown placeholder `{}`: `{}` is not an argument of this function; {hint}",
                placeholder.text, placeholder.root
            ),
        );
        return Err(guess);
    };
    let slot = match templated.iter().position(|i| *i == index) {
        Some(slot) => slot,
        None => {
            templated.push(index);
            templated.len() - 1
        }
    };
    Ok(ArgRef {
        slot,
        fields: placeholder.fields.clone(),
        span: template.lit.span(),
    })
}

/// The checks of `#[cached]`; the plan to expand when none fails.
pub(crate) fn cached(item: &ItemFn, args: CachedArgs, errors: &mut Errors) -> Option<CachedPlan> {
    let mut sig = Signature::of(item);
    let blocking = is_blocking(item);
    let batch = check_batch(&args, &mut sig, errors);
    if batch.is_some() {
        check_batch_is_async(&args, blocking, errors);
        check_batch_options(&args, errors);
    }
    check_blocking_returns_no_future(item, "cached", errors);
    check_receiver(&sig, &args.cache.value, "cached", errors);
    let ret = check_return(item, &sig, errors);
    check_args_are_named(&sig, errors);
    let key = check_key_given(&args, errors);
    let tags = parse_templates(&args.tags, "tag", errors);
    let ttl = check_ttl(&args, errors);
    let jitter_ms = check_jitter_below_ttl(&args, &ttl, errors);
    let lock_ms = check_lock(&args, errors);
    check_lock_is_async(&args, blocking, errors);
    let swr = check_swr(&args, &ttl, errors);
    check_swr_can_detach(swr.as_ref().map(|(_, span)| *span), &sig, errors);
    // A malformed `batch` leaves the templates' `{id}` unbound: reported once, there.
    let batch_unbound = args.batch.given() && batch.is_none();
    let resolved = key
        .as_ref()
        .filter(|_| !batch_unbound)
        .map(|key| check_key_covers_args(key, &tags, &args, &sig, errors));
    let skip_none = match &args.cache_none.value {
        Some(b) if !b.value => Some(b.span),
        _ => None,
    };
    Some(CachedPlan {
        sig,
        ret: ret?,
        name: args.name.value,
        key: key?,
        tags,
        args: resolved?,
        ttl,
        jitter_ms,
        swr,
        lock_ms,
        beta: args.beta.value.map_or(0.0, |beta| beta.0),
        skip_none,
        cache: args.cache.value,
        condition: args.condition.value,
        unless: args.unless.value,
        result_tags: args.result_tags.value,
        version: args.version.value.map_or(0, |version| version.0),
        blocking,
        batch,
        shares: args.shares.value,
    })
}

/// `batch = id in ids` names an argument of type `&[Id]`, `Vec<Id>` or `&Vec<Id>`. In the
/// templates, that argument stands as one id of it, named `id`: `sig` gets it in its place.
fn check_batch(args: &CachedArgs, sig: &mut Signature, errors: &mut Errors) -> Option<BatchPlan> {
    errors.at(args.batch.position());
    let batch = args.batch.value.as_ref()?;
    let Some(index) = sig.position(&batch.arg.to_string()) else {
        let (_, hint) = sig.unknown_arg_hint(&batch.arg.to_string());
        errors.error(
            &batch.arg,
            format!(
                "`batch` names `{}`, which is not an argument of this function; {hint}",
                batch.arg
            ),
        );
        return None;
    };
    let arg_ty = sig.args[index].ty.clone();
    let Some(id_ty) = ids_item(&arg_ty) else {
        let ty = quote::ToTokens::to_token_stream(&arg_ty);
        errors.error(
            &arg_ty,
            format!(
                "a batch method takes its ids as `&[Id]`, `Vec<Id>` or `&Vec<Id>`, and `{}` is \
                 `{ty}`",
                batch.arg
            ),
        );
        return None;
    };
    let arg = &mut sig.args[index];
    arg.ident = Some(batch.item.clone());
    arg.ty = id_ty.clone();
    Some(BatchPlan {
        item: batch.item.clone(),
        arg: batch.arg.clone(),
        arg_ty,
        id_ty,
    })
}

/// `Id` of `&[Id]`, `Vec<Id>` or `&Vec<Id>`.
fn ids_item(ty: &Type) -> Option<Type> {
    let vec_item = |ty: &Type| -> Option<Type> {
        let Type::Path(path) = ty else { return None };
        let last = path.path.segments.last()?;
        if last.ident != "Vec" {
            return None;
        }
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        match args.args.first()? {
            syn::GenericArgument::Type(item) => Some(item.clone()),
            _ => None,
        }
    };
    match ty {
        Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
            Type::Slice(slice) => Some((*slice.elem).clone()),
            elem => vec_item(elem),
        },
        ty => vec_item(ty),
    }
}

/// A batch waits for other calls' loads of its ids, which a blocking function does not do.
fn check_batch_is_async(args: &CachedArgs, blocking: bool, errors: &mut Errors) {
    errors.at(args.batch.position());
    if let (true, Some(batch)) = (blocking, &args.batch.value) {
        errors.error(
            &batch.arg,
            "`batch` caches an `async fn` only: make the function `async`",
        );
    }
}

/// `swr`, `lock` and `beta` act on one key's refresh; a batch loads stale and expiring
/// entries with its misses instead.
fn check_batch_options(args: &CachedArgs, errors: &mut Errors) {
    let refused = [
        (
            "swr",
            args.swr.position(),
            args.swr.value.as_ref().map(|s| s.span),
        ),
        (
            "lock",
            args.lock.position(),
            args.lock.value.as_ref().map(|l| l.span),
        ),
        (
            "beta",
            args.beta.position(),
            args.beta.given().then(Span::call_site),
        ),
    ];
    for (name, position, span) in refused {
        let Some(span) = span else { continue };
        errors.at(position);
        errors.error_at(
            span,
            format!(
                "`{name}` is not supported with `batch`: a batch loads stale entries with its \
                 misses, in one run of its body; remove `{name}` here (the single-id method \
                 sharing the entries may keep it)"
            ),
        );
    }
}

/// The return type is stored beyond the call: it is not `()`, it can be named, and it does
/// not borrow.
fn check_return(item: &ItemFn, sig: &Signature, errors: &mut Errors) -> Option<Type> {
    let Some(ty) = &sig.ret else {
        let message = concat!(
            "#[cached] on a function returning `()` caches nothing; return the value to cache, ",
            "or use #[invalidates] for a write",
        );
        match &item.sig.output {
            syn::ReturnType::Type(_, ty) => errors.error(ty, message),
            syn::ReturnType::Default => errors.error(&item.sig, message),
        }
        return None;
    };
    if mentions_impl_trait(ty) {
        // A blocking `fn` returning `impl Future` was told to be `async` instead.
        if !(is_blocking(item) && mentions_future(ty)) {
            let message = concat!(
                "#[cached] needs a nameable return type to cache; `impl Trait` cannot be ",
                "stored. Return a concrete type",
            );
            errors.error(ty, message);
        }
        return None;
    }
    if let Some(borrowed) = borrowed_part(ty) {
        let message = concat!(
            "#[cached] stores the value beyond the call, so it cannot borrow: this lifetime ties ",
            "it to the call. Return an owned type (`String`, `Vec<T>`, `Arc<T>`, ...)",
        );
        errors.error(borrowed, message);
        return None;
    }
    Some(ty.clone())
}

/// Every argument is a plain `name: Type`, to be part of the key or ignored (and to be owned
/// by an `swr` refresh).
fn check_args_are_named(sig: &Signature, errors: &mut Errors) {
    for arg in sig.args.iter().filter(|arg| arg.ident.is_none()) {
        let (name, field) = whole_argument(&arg.ty);
        let ty = quote::ToTokens::to_token_stream(&arg.ty);
        errors.error(
            &arg.tokens,
            format!(
                "#[cached] needs every argument to be a plain `name: Type`, so that it can be part \
                 of the key: take this one whole, e.g. `{name}: {ty}`, and write \
                 `{{{name}.{field}}}` in the key",
            ),
        );
    }
}

/// `key` is given; its template, unless malformed.
fn check_key_given(args: &CachedArgs, errors: &mut Errors) -> Option<Template> {
    errors.at(args.key.position());
    match &args.key.value {
        Some(lit) => Some(Template::parse(lit, "key", errors)),
        None if args.key.given() => None,
        None => {
            errors.error_at(
                Span::call_site(),
                format!("#[cached] needs `key = \"...\"`, e.g. {}", args.key.example),
            );
            None
        }
    }
}

/// `ttl` is given, and greater than zero when written as a literal (0 when reported).
fn check_ttl(args: &CachedArgs, errors: &mut Errors) -> Length {
    errors.at(args.ttl.position());
    match &args.ttl.value {
        None if args.ttl.given() => Length::Fixed(0),
        None => {
            errors.error_at(
                Span::call_site(),
                format!("#[cached] needs `ttl`, e.g. {}", args.ttl.example),
            );
            Length::Fixed(0)
        }
        Some(Duration::Fixed(ttl)) if ttl.value == 0 => {
            errors.error_at(
                ttl.span,
                "`ttl` must be greater than zero: an entry that expires at once caches nothing",
            );
            Length::Fixed(0)
        }
        Some(Duration::Fixed(ttl)) => Length::Fixed(ttl.value),
        Some(Duration::FromResult(expr)) => Length::FromResult(expr.clone()),
    }
}

/// `jitter` is taken off a literal TTL, so it is smaller than the TTL; in milliseconds. (Of a
/// computed TTL, the runtime takes at most half.)
fn check_jitter_below_ttl(args: &CachedArgs, ttl: &Length, errors: &mut Errors) -> u64 {
    errors.at(args.jitter.position());
    match (args.jitter.value, ttl) {
        (Some(j), Length::Fixed(ttl_ms)) if *ttl_ms > 0 && j.value >= *ttl_ms => {
            errors.error_at(
                j.span,
                "`jitter` must be smaller than `ttl`: it is taken off the TTL at random",
            );
            0
        }
        (Some(j), _) => j.value,
        (None, _) => 0,
    }
}

/// `lock` waits for a while: 5 s when bare, never 0; in milliseconds, 0 without `lock`.
fn check_lock(args: &CachedArgs, errors: &mut Errors) -> u64 {
    errors.at(args.lock.position());
    let zero = "`lock = 0` would never wait for another instance; remove `lock` instead";
    window(&args.lock.value, 5_000, zero, errors).map_or(0, |(ms, _)| ms)
}

/// `swr` serves stale values for a while: as long as the TTL when bare (computed with it when
/// the TTL is), never a literal 0.
fn check_swr(args: &CachedArgs, ttl: &Length, errors: &mut Errors) -> Option<(Length, Span)> {
    errors.at(args.swr.position());
    let stale = args.swr.value.as_ref()?;
    let window = match &stale.window {
        Some(Duration::Fixed(w)) if w.value == 0 => {
            errors.error_at(
                w.span,
                "`swr = 0` serves nothing stale; remove `swr` instead",
            );
            return None;
        }
        Some(Duration::Fixed(w)) => Length::Fixed(w.value),
        Some(Duration::FromResult(expr)) => Length::FromResult(expr.clone()),
        None => ttl.clone(),
    };
    Some((window, stale.span))
}

/// An `swr` refresh runs after the call returned, so it holds no `&mut`: not `&mut self`, not
/// a `&mut` argument. Reported at the position of `swr` (after [`check_swr`]).
fn check_swr_can_detach(swr: Option<Span>, sig: &Signature, errors: &mut Errors) {
    let Some(span) = swr else {
        return;
    };
    if sig.receiver.is(Receiver::RefMut) {
        errors.error_at(
            span,
            "`swr` refreshes in the background and cannot hold `&mut self`; take `&self`",
        );
    }
    for arg in &sig.args {
        if arg.referent().is_some_and(|(_, mutable)| mutable) {
            errors.error(
                &arg.tokens,
                "`swr` refreshes in the background and cannot hold a `&mut` argument: take it by \
                 value or by `&`, or remove `swr`",
            );
        }
    }
}

/// Every placeholder of the key and tags names an argument, every `ignore` entry names an
/// argument that is not in the key, and every argument is in the key unless ignored: calls
/// that differ in an argument do not share an entry.
fn check_key_covers_args(
    key: &Template,
    tags: &[Template],
    args: &CachedArgs,
    sig: &Signature,
    errors: &mut Errors,
) -> TemplateArgs {
    let mut all: Vec<&Template> = vec![key];
    all.extend(tags.iter());
    // Arguments that a misspelled placeholder or `ignore` entry probably meant: reported
    // with the misspelling, not again as missing.
    let mut meant = Vec::new();
    let mut orders = vec![args.key.position()];
    orders.resize(all.len(), args.tags.position());
    let resolved = resolve(&all, &orders, sig, true, &mut meant, errors);
    let in_key: Vec<&str> = key.placeholders().map(|p| p.root.as_str()).collect();
    check_ignored_are_args_outside_key(args, &in_key, sig, &mut meant, errors);
    errors.at(args.key.position());
    for arg in &sig.args {
        let Some(ident) = &arg.ident else {
            continue;
        };
        let name = ident.to_string();
        // A malformed key placeholder was reported; which argument it meant is unknown.
        if key.incomplete || meant.contains(&name) {
            continue;
        }
        if !in_key.contains(&name.as_str()) && !args.ignore.items().iter().any(|i| *i == name) {
            errors.error(
                &key.lit,
                format!(
                    "argument `{name}` is missing from the key, so calls differing only in \
                     `{name}` would share an entry; add `{{{name}}}` to the key, or \
                     `ignore = [{name}]` if it does not affect the result"
                ),
            );
        }
    }
    resolved
}

/// Every `ignore` entry names an argument, and one that is not in the key (`in_key`). The
/// arguments misspelled entries probably meant go to `meant`.
fn check_ignored_are_args_outside_key(
    args: &CachedArgs,
    in_key: &[&str],
    sig: &Signature,
    meant: &mut Vec<String>,
    errors: &mut Errors,
) {
    errors.at(args.ignore.position());
    for ignored in args.ignore.items() {
        let name = ignored.to_string();
        if sig.position(&name).is_none() {
            let (guess, hint) = sig.unknown_arg_hint(&name);
            errors.error(
                ignored,
                format!(
                    "`ignore` names `{ignored}`, which is not an argument of this function; \
                     {hint}"
                ),
            );
            meant.extend(guess);
        } else if in_key.contains(&name.as_str()) {
            errors.error(
                ignored,
                format!("`{ignored}` is in the key; remove it from `ignore`"),
            );
        }
    }
}

/// The checks of `#[invalidates]`; the plan to expand when none fails.
pub(crate) fn invalidates(
    item: &ItemFn,
    args: InvalidatesArgs,
    errors: &mut Errors,
) -> Option<InvalidatesPlan> {
    let sig = Signature::of(item);
    check_blocking_returns_no_future(item, "invalidates", errors);
    check_receiver(&sig, &args.cache.value, "invalidates", errors);
    check_something_to_invalidate(&args, errors);
    let tags = parse_templates(&args.tags, "tag", errors);
    let keys = parse_templates(&args.keys, "key", errors);
    let resolved = check_placeholders_name_args(&tags, &keys, &args, &sig, errors);
    let ret = sig.ret.clone().filter(|ty| !mentions_impl_trait(ty));
    Some(InvalidatesPlan {
        sig,
        ret,
        name: args.name.value,
        tags,
        keys,
        args: resolved,
        cache: args.cache.value,
        blocking: is_blocking(item),
    })
}

/// `tags` or `keys` is given.
fn check_something_to_invalidate(args: &InvalidatesArgs, errors: &mut Errors) {
    if !args.tags.given() && !args.keys.given() {
        errors.error_at(
            Span::call_site(),
            "#[invalidates] needs something to invalidate: `tags = [\"customer.{customer.id}\"]` \
             and/or `keys = [\"customer.{id}\"]`",
        );
    }
}

/// Every placeholder of the tags and keys names a plain argument.
fn check_placeholders_name_args(
    tags: &[Template],
    keys: &[Template],
    args: &InvalidatesArgs,
    sig: &Signature,
    errors: &mut Errors,
) -> TemplateArgs {
    let all: Vec<&Template> = tags.iter().chain(keys.iter()).collect();
    let mut orders = vec![args.tags.position(); tags.len()];
    orders.resize(all.len(), args.keys.position());
    resolve(&all, &orders, sig, false, &mut Vec::new(), errors)
}

/// A bare or valued duration option: `(milliseconds, span of the option)`, `default` when bare;
/// zero is reported with `zero`.
fn window(
    option: &Option<crate::attr::Wait>,
    default: u64,
    zero: &str,
    errors: &mut Errors,
) -> Option<(u64, Span)> {
    let option = option.as_ref()?;
    match option.window {
        Some(w) if w.value == 0 => {
            errors.error_at(w.span, zero);
            None
        }
        Some(w) => Some((w.value, option.span)),
        None => Some((default, option.span)),
    }
}

/// Parses every template of a list option, reporting problems at its position.
fn parse_templates(option: &Attr<Vec<LitStr>>, what: &str, errors: &mut Errors) -> Vec<Template> {
    errors.at(option.position());
    option
        .items()
        .iter()
        .map(|t| Template::parse(t, what, errors))
        .collect()
}
