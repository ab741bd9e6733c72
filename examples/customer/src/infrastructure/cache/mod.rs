//! Caching: the cached repository (the annotations) and the tags of a cached customer, its
//! warmer, and the statistics the instances publish for the console.

mod published;
mod repository;
mod tags;
mod warmer;

pub use published::{PublishedStats, StatsPublisher};
pub use repository::methods as repository_methods;
pub use repository::{
    CachedCustomerRepository, InMemoryCustomerRepository, MongoCustomerRepository,
};
pub use warmer::{CustomerCacheWarmer, WarmReport};
