//! The customer application, as a library for its binary and its tests. Hexagonal:
//! `domain` (the customer and the repository port), `application` (the update use case),
//! `infrastructure` (persistence, cache, console, HTTP).

pub mod application;
pub mod domain;
pub mod infrastructure;
