//! Compile-fail suite of `#[cached]` and `#[invalidates]`: every misuse is reported at the
//! offending token with a fix, and valid usage compiles.
//!
//! Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p cache-tests --test compile_fail`, then read every
//! `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/ui/all_options.rs");
}
