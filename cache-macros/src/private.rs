//! The one path generated code names: the runtime's private module, whose name carries the
//! version (`cache_runtime::__private_0_1_0`), as serde's does. A macro crate and a runtime
//! of different versions then fail to compile with "could not find `__private_…` in
//! `cache_runtime`", instead of misbehaving.

use proc_macro2::{Span, TokenStream};
use quote::{quote_spanned, ToTokens};
use syn::Ident;

/// Interpolated as `#PRIVATE::item` in `quote!`; in `quote_spanned!`, interpolate
/// [`PRIVATE.at(span)`](Private::at) instead, so that the whole path carries the span.
pub(crate) const PRIVATE: Private = Private;

pub(crate) struct Private;

impl Private {
    /// The path, every token of it spanned at `span` (an error about the item then lands on
    /// the user's token rather than on the attribute).
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        let version = env!("CARGO_PKG_VERSION").replace(['.', '-', '+'], "_");
        let module = Ident::new(&format!("__private_{version}"), span);
        quote_spanned!(span=> ::cache_runtime::#module)
    }
}

impl ToTokens for Private {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.at(Span::call_site()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_module_of_this_version() {
        assert_eq!(
            PRIVATE.to_token_stream().to_string(),
            ":: cache_runtime :: __private_0_1_0"
        );
    }
}
