//! Parses the arguments of `#[cached(...)]` and `#[invalidates(...)]` into typed models.
//! Nothing here looks at the function: that is `valid.rs`.
//!
//! Each option is declared once, as a line of its attribute's `options!` table: its name, the
//! type of its value (which says how the value is read: [`Value`]) and an example for errors.
//! The walk over `name [= value], ...` ([`parse`]) and the duplicate check ([`Attr`]) serve
//! every option.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, Expr, Ident, LitBool, LitStr, Token};

use crate::duration::{self, Millis};
use crate::errors::{closest, Errors};

options! {
    /// The arguments of `#[cached(...)]`.
    pub(crate) struct CachedArgs for cached {
        key: LitStr = "`key = \"customer.{id}\"`",
        ttl: Duration = concat!(
            "`ttl = 600` (seconds), `ttl = \"10m\"`, or an expression over the value, ",
            "`ttl = if result.is_none() { 30 } else { 600 }`",
        ),
        tags: Vec<LitStr> = "`tags = [\"customer\", \"customer.{id}\"]`",
        swr: Stale = concat!(
            "`swr = 60` (seconds), `swr = \"1m\"`, an expression over the value, or a bare ",
            "`swr` for a window as long as the TTL",
        ),
        lock: Wait = concat!(
            "a bare `lock` (5 s), or `lock = \"2s\"`: how long another instance waits for this ",
            "one's load",
        ),
        beta: Beta = "`beta = 1.0`",
        jitter: Millis = "`jitter = 30` (seconds) or `jitter = \"30s\"`",
        cache: Expr = "`cache = self.cache` or `cache = CACHE`",
        cache_none: LitBool = "`cache_none = false`",
        condition: Expr = "`condition = id > 0`",
        unless: Expr = "`unless = result.is_empty()`",
        result_tags: ResultTags = concat!(
            "a bare `result_tags`, or ",
            "`result_tags = result.iter().map(|c| format!(\"customer.{}\", c.id))`",
        ),
        ignore: Vec<Ident> = "`ignore = [trace_id]`",
        name: LitStr = "`name = \"customer.find_by_id\"`",
        version: Version = concat!(
            "`version = 2`: the version of the value's layout; builds with different versions ",
            "keep their own entries in a shared backend",
        ),
        batch: Batch = concat!(
            "`batch = id in ids`: the method takes many ids (`ids: &[String]`) and caches one ",
            "entry per id (`key = \"customer.{id}\"`)",
        ),
        shares: Shares = concat!(
            "`shares = find_by_id` (a method of this module) or `shares = \"customer.by_id\"` ",
            "(its `name`): keep entries in that method's key space",
        ),
    }
}

options! {
    /// The arguments of `#[invalidates(...)]`.
    pub(crate) struct InvalidatesArgs for invalidates {
        tags: Vec<LitStr> = "`tags = [\"customer\", \"customer.{id}\"]`",
        keys: Vec<LitStr> = "`keys = [\"customer.{id}\"]`",
        cache: Expr = "`cache = self.cache` or `cache = CACHE`",
        name: LitStr = "`name = \"customer.find_by_id\"`",
    }
}

/// One option of an attribute (serde_derive's `Attr<T>`): how it is written, the value read
/// and where in the attribute it was written.
pub(crate) struct Attr<T> {
    /// How the option is written, for errors: "`ttl = 600` (seconds) or `ttl = \"10m\"`".
    pub(crate) example: &'static str,
    /// `None` when the option is not written, or its value is malformed (reported).
    pub(crate) value: Option<T>,
    /// The position in the attribute (see [`Errors::at`]) of the option, even with a malformed
    /// value, or of an unknown option taken for it (so that `valid` does not also report it
    /// missing).
    position: Option<usize>,
    /// Whether the option is written, for the duplicate check.
    written: bool,
}

impl<T> Attr<T> {
    fn new(example: &'static str) -> Self {
        Attr {
            example,
            value: None,
            position: None,
            written: false,
        }
    }

    /// Whether the option is written (or an unknown option was taken for it), even with a
    /// malformed value.
    pub(crate) fn given(&self) -> bool {
        self.position.is_some()
    }

    /// The position of the option for [`Errors::at`]; after the options when not given.
    pub(crate) fn position(&self) -> usize {
        self.position.unwrap_or(Errors::AFTER_OPTIONS)
    }
}

impl<T> Attr<Vec<T>> {
    /// The items of a list option; none when not given.
    pub(crate) fn items(&self) -> &[T] {
        self.value.as_deref().unwrap_or_default()
    }
}

/// The arguments of an attribute, declared by [`options!`].
pub(crate) trait Options: Default {
    /// The attribute, for errors: `cached`.
    const ATTRIBUTE: &'static str;
    /// The options, in the order errors list them.
    const NAMES: &'static [&'static str];
    /// The option called `name`.
    fn option(&mut self, name: &str) -> Option<&mut dyn Opt>;
}

/// An option of either attribute, as [`parse`] walks them.
pub(crate) trait Opt {
    /// Records that the option is written at `position`; `false` when it already is, once
    /// (serde_derive's `Attr::set`).
    fn written_at(&mut self, position: usize) -> bool;

    /// Reads the value after the option's name, `ident`.
    fn read(&mut self, ident: &Ident, input: ParseStream, errors: &mut Errors) -> syn::Result<()>;

    /// An unknown option at `position` was taken for this one.
    fn meant_at(&mut self, position: usize);
}

impl<T: Value> Opt for Attr<T> {
    fn written_at(&mut self, position: usize) -> bool {
        if self.written {
            return false;
        }
        self.written = true;
        self.position = Some(position);
        true
    }

    fn read(&mut self, ident: &Ident, input: ParseStream, errors: &mut Errors) -> syn::Result<()> {
        let option = Written {
            ident,
            example: self.example,
        };
        self.value = Some(T::read(&option, input, errors)?);
        Ok(())
    }

    fn meant_at(&mut self, position: usize) {
        self.position.get_or_insert(position);
    }
}

/// Declares the arguments of an attribute: one line an option, with its name (the field's),
/// the type of its value (which says how the value is read: see [`Value`]) and how it is
/// written, for errors. The lines are in the order errors list the options.
macro_rules! options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $args:ident for $attribute:ident {
            $($option:ident: $ty:ty = $example:expr,)*
        }
    ) => {
        $(#[$meta])*
        $vis struct $args {
            $(pub(crate) $option: Attr<$ty>,)*
        }

        impl Default for $args {
            fn default() -> Self {
                $args {
                    $($option: Attr::new($example),)*
                }
            }
        }

        impl Options for $args {
            const ATTRIBUTE: &'static str = stringify!($attribute);
            const NAMES: &'static [&'static str] = &[$(stringify!($option)),*];

            fn option(&mut self, name: &str) -> Option<&mut dyn Opt> {
                $(
                    if name == stringify!($option) {
                        return Some(&mut self.$option);
                    }
                )*
                None
            }
        }
    };
}
use options;

/// `ttl = 600`, `ttl = "10m"`, or `ttl = <expr over result>`.
pub(crate) enum Duration {
    /// Written as a literal.
    Fixed(Millis),
    /// Computed from the loaded value (`result`) when it is stored.
    FromResult(Expr),
}

/// `swr` or `swr = <duration>`.
pub(crate) struct Stale {
    pub(crate) span: Span,
    pub(crate) window: Option<Duration>,
}

/// `lock` or `lock = N`.
pub(crate) struct Wait {
    pub(crate) span: Span,
    pub(crate) window: Option<Millis>,
}

/// `beta = 1.0`: a positive number.
pub(crate) struct Beta(pub(crate) f64);

/// `result_tags` or `result_tags = <expr>`.
pub(crate) enum ResultTags {
    Entity(Span),
    Expr(Expr),
}

/// `batch = id in ids`: the batch argument (`ids`) and the name each of its items has in the
/// templates (`id`).
pub(crate) struct Batch {
    pub(crate) item: Ident,
    pub(crate) arg: Ident,
}

/// `shares = find_by_id` or `shares = "customer.by_id"`: whose key space a method's entries
/// are in.
pub(crate) enum Shares {
    /// A method of the same module, named by its default name.
    Method(Ident),
    /// A method's `name = "..."`.
    Name(LitStr),
}

/// An option as written, for the errors about its value.
pub(crate) struct Written<'a> {
    ident: &'a Ident,
    example: &'static str,
}

/// The value of an option, read after its name; how it is read follows from its type.
pub(crate) trait Value: Sized {
    fn read(option: &Written, input: ParseStream, errors: &mut Errors) -> syn::Result<Self>;
}

/// `key = "..."`, `name = "..."`.
impl Value for LitStr {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        option.string(input)
    }
}

/// `ttl = 600`, `jitter = "30s"`.
impl Value for Millis {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        duration::parse(&option.value(input)?, &option.name())
    }
}

/// `tags = ["...", ...]`, `keys = [...]`.
impl Value for Vec<LitStr> {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        let content = option.list(input)?;
        let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
        items
            .into_iter()
            .map(|item| match item {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Ok(s),
                other => Err(syn::Error::new_spanned(
                    other,
                    "expected a string literal template, e.g. \"customer.{id}\"",
                )),
            })
            .collect()
    }
}

/// `ignore = [arg, ...]`.
impl Value for Vec<Ident> {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        let content = option.list(input)?;
        let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
        let expected = || {
            let (name, example) = (option.ident, option.example);
            format!("`{name}` lists argument names, e.g. {example}")
        };
        items
            .into_iter()
            .map(|item| match item {
                Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
                    match p.path.get_ident() {
                        Some(ident) => Ok(ident.clone()),
                        None => Err(syn::Error::new_spanned(p, expected())),
                    }
                }
                other => Err(syn::Error::new_spanned(other, expected())),
            })
            .collect()
    }
}

/// A bare option (`swr`), or one with a duration (`swr = "1m"`).
/// A literal is a fixed duration (checked here); any other expression is computed from the
/// value when it is stored.
impl Value for Duration {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        let expr: Expr = option.value(input)?;
        let literal = match &expr {
            Expr::Lit(_) => true,
            Expr::Unary(syn::ExprUnary {
                op: syn::UnOp::Neg(_),
                expr,
                ..
            }) => matches!(**expr, Expr::Lit(_)),
            _ => false,
        };
        if literal {
            Ok(Duration::Fixed(duration::parse(&expr, &option.name())?))
        } else {
            Ok(Duration::FromResult(expr))
        }
    }
}

impl Value for Stale {
    fn read(option: &Written, input: ParseStream, errors: &mut Errors) -> syn::Result<Self> {
        let window = if input.peek(Token![=]) {
            Some(Duration::read(option, input, errors)?)
        } else {
            None
        };
        Ok(Stale {
            span: option.ident.span(),
            window,
        })
    }
}

impl Value for Wait {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        let window = if input.peek(Token![=]) {
            Some(duration::parse(&option.value(input)?, &option.name())?)
        } else {
            None
        };
        Ok(Wait {
            span: option.ident.span(),
            window,
        })
    }
}

impl Value for Beta {
    fn read(option: &Written, input: ParseStream, errors: &mut Errors) -> syn::Result<Self> {
        let expr: Expr = option.value(input)?;
        let beta = match &expr {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Float(f),
                ..
            }) => f.base10_parse::<f64>()?,
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(i),
                ..
            }) => i.base10_parse::<u32>()? as f64,
            _ => {
                let (name, example) = (option.ident, option.example);
                let message = format!("`{name}` takes a positive number, e.g. {example}");
                return Err(syn::Error::new_spanned(&expr, message));
            }
        };
        if beta <= 0.0 {
            let message = concat!(
                "`beta` must be greater than 0 (1.0 is XFetch's default); remove it to turn ",
                "early recomputation off",
            );
            errors.error(&expr, message);
        }
        Ok(Beta(beta))
    }
}

impl Value for Batch {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        let (name, example) = (option.ident, option.example);
        let expected =
            || format!("`{name}` names each id and the argument holding them: {example}");
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(name.span(), expected()));
        }
        input.parse::<Token![=]>()?;
        let parse = |input: ParseStream| -> syn::Result<Batch> {
            let item: Ident = input.parse()?;
            input.parse::<Token![in]>()?;
            let arg: Ident = input.parse()?;
            Ok(Batch { item, arg })
        };
        parse(input).map_err(|_| syn::Error::new(name.span(), expected()))
    }
}

impl Value for Shares {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        match option.value::<Expr>(input)? {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(name),
                ..
            }) => Ok(Shares::Name(name)),
            Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                Ok(Shares::Method(p.path.get_ident().expect("checked").clone()))
            }
            other => {
                let (name, example) = (option.ident, option.example);
                let message = format!("`{name}` takes a method's name or a string: {example}");
                Err(syn::Error::new_spanned(other, message))
            }
        }
    }
}

/// `cache = <expr>`, `condition = <expr>`, `unless = <expr>`.
impl Value for Expr {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        option.value(input)
    }
}

/// The version of a cached method's value layout (`version = 2`), at least 1.
pub(crate) struct Version(pub(crate) u32);

/// `version = 2`.
impl Value for Version {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        match option.value(input)? {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(n),
                ..
            }) if n.base10_parse::<u32>().is_ok_and(|n| n >= 1) => Ok(Version(n.base10_parse()?)),
            other => Err(syn::Error::new_spanned(
                other,
                "`version` takes a whole number from 1 (`version = 2`)",
            )),
        }
    }
}

/// `cache_none = false`.
impl Value for LitBool {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        match option.value(input)? {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Bool(b),
                ..
            }) => Ok(b),
            other => {
                let name = option.ident;
                let message = format!("`{name}` takes `true` (the default) or `false`");
                Err(syn::Error::new_spanned(other, message))
            }
        }
    }
}

impl Value for ResultTags {
    fn read(option: &Written, input: ParseStream, _: &mut Errors) -> syn::Result<Self> {
        Ok(if input.peek(Token![=]) {
            ResultTags::Expr(option.value(input)?)
        } else {
            ResultTags::Entity(option.ident.span())
        })
    }
}

impl Written<'_> {
    fn name(&self) -> String {
        self.ident.to_string()
    }

    /// `= <value>`.
    fn value<T: syn::parse::Parse>(&self, input: ParseStream) -> syn::Result<T> {
        let (name, example) = (self.ident, self.example);
        if !input.peek(Token![=]) {
            let message = format!("`{name}` needs a value, e.g. {example}");
            return Err(syn::Error::new(name.span(), message));
        }
        input.parse::<Token![=]>()?;
        if input.is_empty() || input.peek(Token![,]) {
            let message = format!("`{name}` needs a value after `=`, e.g. {example}");
            return Err(syn::Error::new(name.span(), message));
        }
        input.parse()
    }

    /// `= "..."`.
    fn string(&self, input: ParseStream) -> syn::Result<LitStr> {
        match self.value::<Expr>(input)? {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Ok(s),
            other => {
                let (name, example) = (self.ident, self.example);
                let message = format!("`{name}` takes a string literal, e.g. {example}");
                Err(syn::Error::new_spanned(other, message))
            }
        }
    }

    /// `= [...]`: the bracketed contents.
    fn list<'a>(&self, input: ParseStream<'a>) -> syn::Result<syn::parse::ParseBuffer<'a>> {
        let (name, example) = (self.ident, self.example);
        let expected = format!("`{name}` takes a list in square brackets, e.g. {example}");
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(name.span(), expected));
        }
        input.parse::<Token![=]>()?;
        if !input.peek(syn::token::Bracket) {
            let found: Expr = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), &expected))?;
            return Err(syn::Error::new_spanned(found, expected));
        }
        let content;
        bracketed!(content in input);
        Ok(content)
    }
}

/// Parses the arguments of an attribute: walks `name [= value], ...`, reading every known
/// option and reporting unknown and duplicate ones. After an error it skips to the next
/// top-level comma.
pub(crate) fn parse<A: Options>(tokens: TokenStream, errors: &mut Errors) -> A {
    let mut args = A::default();
    let (attribute, names) = (A::ATTRIBUTE, A::NAMES);
    let parser = |input: ParseStream| -> syn::Result<()> {
        let mut position = 0;
        while !input.is_empty() {
            errors.at(position);
            let at = position;
            position += 1;
            let name = match input.call(Ident::parse_any) {
                Ok(name) => name,
                Err(e) => {
                    errors.push(syn::Error::new(
                        e.span(),
                        format!("expected an option of #[{attribute}]: {}", names.join(", ")),
                    ));
                    skip_to_comma(input);
                    continue;
                }
            };
            let text = name.to_string();
            match args.option(&text) {
                None => {
                    let meant = closest(&text, names.iter().copied());
                    let hint = match meant {
                        Some(meant) => format!("did you mean `{meant}`?"),
                        None => format!("the options are: {}", names.join(", ")),
                    };
                    let message = format!("unknown option `{text}` for #[{attribute}]; {hint}");
                    errors.error(&name, message);
                    // Do not also report the option meant as missing.
                    if let Some(meant) = meant.and_then(|meant| args.option(meant)) {
                        meant.meant_at(at);
                    }
                    skip_to_comma(input);
                }
                Some(option) => {
                    if !option.written_at(at) {
                        let message = format!(
                            "duplicate option `{text}`: it is already given earlier in this \
                             attribute; keep one"
                        );
                        errors.error(&name, message);
                        skip_to_comma(input);
                    } else if let Err(e) = option.read(&name, input, errors) {
                        errors.push(e);
                        skip_to_comma(input);
                    } else if !input.is_empty() && !input.peek(Token![,]) {
                        errors.push(input.error(format!("expected `,` after option `{text}`")));
                        // When an option follows, read on as if the comma were there:
                        // `key = "..." ttl = 600` is one mistake.
                        let next_is_option = input
                            .fork()
                            .call(Ident::parse_any)
                            .is_ok_and(|next| names.contains(&next.to_string().as_str()));
                        if !next_is_option {
                            skip_to_comma(input);
                        }
                    }
                }
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(tokens) {
        errors.push(e);
    }
    errors.at(Errors::AFTER_OPTIONS);
    args
}

fn skip_to_comma(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if let TokenTree::Punct(p) = &tt {
                if p.as_char() == ',' {
                    return Ok(((), rest));
                }
            }
            rest = next;
        }
        Ok(((), rest))
    });
}
