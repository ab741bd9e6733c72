//! Renames `self` in a body, for the `swr` refresh that owns a clone of the receiver.

use proc_macro2::{Group, Ident, TokenStream, TokenTree};
use syn::visit_mut::VisitMut;

pub(crate) const SELF_CLONE: &str = "__cache_self";

struct Rename;

fn rename_tokens(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Ident(ident) if ident == "self" => {
                TokenTree::Ident(Ident::new(SELF_CLONE, ident.span()))
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename_tokens(group.stream()));
                renamed.set_span(group.span());
                TokenTree::Group(renamed)
            }
            other => other,
        })
        .collect()
}

impl VisitMut for Rename {
    fn visit_ident_mut(&mut self, ident: &mut Ident) {
        if ident == "self" {
            *ident = Ident::new(SELF_CLONE, ident.span());
        }
    }

    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        // `self::module::item` is a module path, not the receiver.
        if path.segments.len() > 1 && path.segments[0].ident == "self" {
            return;
        }
        syn::visit_mut::visit_path_mut(self, path);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = rename_tokens(std::mem::take(&mut mac.tokens));
    }

    // Nested items have their own `self`.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// `block` with every `self` (outside nested items) renamed.
pub(crate) fn rename_self(block: &syn::Block) -> syn::Block {
    let mut block = block.clone();
    Rename.visit_block_mut(&mut block);
    block
}
