//! What `#[cached]` and `#[invalidates]` need to know about the function they wrap.

use proc_macro2::Span;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

#[derive(Clone, Copy)]
pub(crate) enum Receiver {
    None,
    Ref,
    RefMut,
    Value(Span),
}

pub(crate) struct Arg {
    pub(crate) ident: Option<Ident>,
    pub(crate) ty: Type,
    /// The whole argument, `name: Type`, for errors about it.
    pub(crate) tokens: proc_macro2::TokenStream,
    /// The names a pattern argument (`(x, y): (u32, u32)`) binds; empty for a plain one.
    pub(crate) bindings: Vec<String>,
}

impl Receiver {
    pub(crate) fn is(self, other: Receiver) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

impl Arg {
    /// `T` of an argument of type `&T`.
    pub(crate) fn referent(&self) -> Option<(&Type, bool)> {
        match &self.ty {
            Type::Reference(r) => Some((&r.elem, r.mutability.is_some())),
            _ => None,
        }
    }
}

pub(crate) struct Signature {
    pub(crate) receiver: Receiver,
    pub(crate) args: Vec<Arg>,
    /// The declared return type; `None` for `()`.
    pub(crate) ret: Option<Type>,
}

impl Signature {
    pub(crate) fn of(item: &ItemFn) -> Signature {
        let mut receiver = Receiver::None;
        let mut args = Vec::new();
        for input in &item.sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    receiver = match (&r.reference, &r.mutability) {
                        (Some(_), Some(_)) => Receiver::RefMut,
                        (Some(_), None) => Receiver::Ref,
                        (None, _) => match &*r.ty {
                            Type::Reference(t) if t.mutability.is_some() => Receiver::RefMut,
                            Type::Reference(_) => Receiver::Ref,
                            _ => Receiver::Value(r.self_token.span),
                        },
                    }
                }
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => {
                            Some(p.ident.clone())
                        }
                        _ => None,
                    };
                    let bindings = if ident.is_some() {
                        Vec::new()
                    } else {
                        pattern_bindings(&typed.pat)
                    };
                    args.push(Arg {
                        ident,
                        ty: (*typed.ty).clone(),
                        tokens: quote::ToTokens::to_token_stream(typed),
                        bindings,
                    });
                }
            }
        }
        let ret = match &item.sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => match &**ty {
                Type::Tuple(t) if t.elems.is_empty() => None,
                ty => Some(ty.clone()),
            },
        };
        Signature {
            receiver,
            args,
            ret,
        }
    }

    /// "the arguments are `a`, `b`", or that there are none.
    pub(crate) fn arg_names(&self) -> String {
        let names = self.names_list();
        if names.is_empty() {
            "the function has no named arguments".to_string()
        } else {
            format!("the arguments are {names}")
        }
    }

    /// The named argument `name` is probably a misspelling of.
    pub(crate) fn closest_arg(&self, name: &str) -> Option<String> {
        let names: Vec<String> = self
            .args
            .iter()
            .filter_map(|a| a.ident.as_ref())
            .map(|i| i.to_string())
            .collect();
        crate::errors::closest(name, names.iter().map(String::as_str)).map(str::to_string)
    }

    /// For a name that is not an argument: the argument it probably misspells, and the hint
    /// to show ("did you mean `a`? The arguments are `a`, `b`", or the list alone).
    pub(crate) fn unknown_arg_hint(&self, name: &str) -> (Option<String>, String) {
        let guess = self.closest_arg(name);
        let hint = match &guess {
            Some(arg) => format!(
                "did you mean `{arg}`? The arguments are {}",
                self.names_list()
            ),
            None => self.arg_names(),
        };
        (guess, hint)
    }

    /// "`a`, `b`".
    pub(crate) fn names_list(&self) -> String {
        let names: Vec<String> = self
            .args
            .iter()
            .filter_map(|a| a.ident.as_ref())
            .map(|i| format!("`{i}`"))
            .collect();
        names.join(", ")
    }

    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.args
            .iter()
            .position(|a| a.ident.as_ref().is_some_and(|i| i == name))
    }
}

/// The first part of `ty` that borrows for a non-`'static` lifetime: a reference (`&T`,
/// `&'a T`) or a lifetime argument (`Cow<'a, str>`, `Foo<'_>`). Function pointer and `Fn`
/// signatures are skipped: their lifetimes are bound there.
pub(crate) fn borrowed_part(ty: &Type) -> Option<proc_macro2::TokenStream> {
    use quote::ToTokens;
    struct Finder(Option<proc_macro2::TokenStream>);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if self.0.is_some() {
                return;
            }
            if r.lifetime.as_ref().is_some_and(|l| l.ident == "static") {
                syn::visit::visit_type(self, &r.elem);
            } else {
                self.0 = Some(r.to_token_stream());
            }
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if self.0.is_none() && lifetime.ident != "static" {
                self.0 = Some(lifetime.to_token_stream());
            }
        }
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
        fn visit_parenthesized_generic_arguments(
            &mut self,
            _: &'ast syn::ParenthesizedGenericArguments,
        ) {
        }
    }
    let mut finder = Finder(None);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// The names bound by a pattern.
fn pattern_bindings(pat: &Pat) -> Vec<String> {
    struct Finder(Vec<String>);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.push(p.ident.to_string());
            syn::visit::visit_pat_ident(self, p);
        }
    }
    let mut finder = Finder(Vec::new());
    syn::visit::Visit::visit_pat(&mut finder, pat);
    finder.0
}

/// Whether `ty` mentions `impl Trait`.
pub(crate) fn mentions_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// Whether `ty` names a future: `impl Future<...>`, `dyn Future<...>`, `Pin<Box<dyn Future>>`
/// or any path ending in `Future` (`BoxFuture`, `LocalBoxFuture`): the return type of an
/// asynchronous function written without `async`.
pub(crate) fn mentions_future(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
            if segment.ident.to_string().ends_with("Future") {
                self.0 = true;
            }
            syn::visit::visit_path_segment(self, segment);
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}
