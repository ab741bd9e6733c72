//! Instruction counts of the hit paths, for `valgrind --tool=callgrind`: run as
//! `instructions <variant> <iterations>`, once with 0 iterations for the set-up. Unlike
//! timings, the counts repeat on a shared, noisy machine (within 1%: the maps' hashers are
//! seeded at random).
//!
//! Each iteration is 100 calls (or one batch of 100 ids) over 100 warm keys: `#[cached]`'s
//! single and batch hits (of a customer, and of an `Arc` of one), a single hit of an `Arc`
//! without tags, and the baselines of `benches/hit_path.rs`
//! (the `cached` crate's `#[cached]`, and a `HashMap` get of a `format!`ted key plus a clone).
//! `scripts/instructions` runs it and prints instructions per 100 calls of each variant.

#[path = "support/instructions.rs"]
mod instructions;

fn main() {
    instructions::main();
}
