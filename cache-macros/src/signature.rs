//! What `#[cached]` and `#[invalidates]` need to know about the function they wrap.

use proc_macro2::Span;
use syn::spanned::Spanned;
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
    pub(crate) span: Span,
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
                        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => Some(p.ident.clone()),
                        _ => None,
                    };
                    args.push(Arg {
                        ident,
                        ty: (*typed.ty).clone(),
                        span: typed.span(),
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
        Signature { receiver, args, ret }
    }

    pub(crate) fn arg_names(&self) -> String {
        let names: Vec<String> = self.args.iter().filter_map(|a| a.ident.as_ref()).map(|i| format!("`{i}`")).collect();
        if names.is_empty() {
            "the function has no named arguments".to_string()
        } else {
            format!("the arguments are {}", names.join(", "))
        }
    }

    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.args.iter().position(|a| a.ident.as_ref().is_some_and(|i| i == name))
    }
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
