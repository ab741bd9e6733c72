//! The history checker's parts (declared by `tests/history.rs` with `#[path]`): the dated
//! store and the repository over it, the proxy, the faults, the record of calls, the checker.

pub mod check;
pub mod faults;
pub mod proxy;
pub mod record;
pub mod store;
