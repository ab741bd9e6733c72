//! Caching: the cached repository (the annotations) and the tags of a cached customer, its
//! warmer, the statistics the instances publish for the console, and the name of each thing
//! the cache can do for a call.

mod outcome;
mod published;
mod repository;
mod tags;
mod warmer;

pub use outcome::{first_outcome, outcome_meaning, outcome_name};
pub use published::{PublishedStats, StatsPublisher};
pub use repository::methods as repository_methods;
pub use repository::{
    CachedCustomerRepository, InMemoryCustomerRepository, MongoCustomerRepository,
};
pub use warmer::{CustomerCacheWarmer, WarmReport};
