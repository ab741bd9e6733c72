//! The variants of `benches/instructions.rs`, under mimalloc instead of the system allocator
//! (glibc's on Linux): `scripts/instructions` counts both, so that what is the allocator's and
//! what is the cache's can be told apart. Run as `instructions_mimalloc <variant> <iterations>`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/instructions.rs"]
mod instructions;

fn main() {
    instructions::main();
}
