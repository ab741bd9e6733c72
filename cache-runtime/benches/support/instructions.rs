//! The variants `benches/instructions.rs` and `benches/instructions_mimalloc.rs` count, under
//! the system allocator and under mimalloc: each iteration is 100 calls (or one batch of 100
//! ids) over 100 warm keys.

#[path = "batch_repo.rs"]
mod batch_repo;
#[path = "cached_crate.rs"]
mod cached_crate;
#[path = "customer.rs"]
mod customer;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use cache_runtime::Cache;

use self::batch_repo::Repo;
// `cached_crate` takes these from its parent.
use self::customer::{customer, Customer};

/// A value shared by `Arc`, cached without tags; and a single-id method and a batch method
/// sharing entries of `Arc` values, tagged as `Repo`'s.
pub struct Shared {
    cache: Cache,
}

impl Shared {
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, name = "bench::shared")]
    pub async fn find(&self, id: &str) -> Result<Arc<Customer>, Infallible> {
        Ok(Arc::new(customer(id)))
    }

    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"])]
    pub async fn find_by_id(&self, id: &str) -> Result<Option<Arc<Customer>>, Infallible> {
        Ok(Some(Arc::new(customer(id))))
    }

    #[cache_runtime::cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = find_by_id
    )]
    pub async fn find_by_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<Customer>>, Infallible> {
        Ok(ids
            .iter()
            .map(|id| (id.clone(), Arc::new(customer(id))))
            .collect())
    }
}

/// Runs the variant and the number of iterations the command line names.
pub fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let variant = args.next().unwrap_or_else(|| "batch".into());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let repo = Repo {
        cache: Cache::in_memory(100_000),
    };
    let shared = Shared {
        cache: Cache::in_memory(100_000),
    };
    let ids: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let map: HashMap<String, Customer> = ids
        .iter()
        .map(|id| (format!("customer.{id}"), customer(id)))
        .collect();
    let arcs: HashMap<String, Arc<Customer>> = ids
        .iter()
        .map(|id| (format!("customer.{id}"), Arc::new(customer(id))))
        .collect();
    rt.block_on(async {
        repo.find_by_ids(&ids).await.unwrap();
        shared.find_by_ids(&ids).await.unwrap();
        for id in &ids {
            shared.find(id).await.unwrap();
            cached_crate::find(id).await.unwrap();
        }
        for _ in 0..iterations {
            match variant.as_str() {
                "single" => {
                    for id in &ids {
                        black_box(repo.find_by_id(id).await.unwrap());
                    }
                }
                "single_into_map" => {
                    let mut map = HashMap::with_capacity(ids.len());
                    for id in &ids {
                        if let Some(found) = repo.find_by_id(id).await.unwrap() {
                            map.insert(id.clone(), found);
                        }
                    }
                    black_box(map);
                }
                "batch" => {
                    black_box(repo.find_by_ids(&ids).await.unwrap());
                }
                "arc_single" => {
                    for id in &ids {
                        black_box(shared.find_by_id(id).await.unwrap());
                    }
                }
                "arc_batch" => {
                    black_box(shared.find_by_ids(&ids).await.unwrap());
                }
                "arc" => {
                    for id in &ids {
                        black_box(shared.find(id).await.unwrap());
                    }
                }
                "cached_crate" => {
                    for id in &ids {
                        black_box(cached_crate::find(id).await.unwrap());
                    }
                }
                "floor" => {
                    for id in &ids {
                        let key = format!("customer.{id}");
                        black_box(map.get(&key).cloned());
                    }
                }
                "floor_arc" => {
                    for id in &ids {
                        let key = format!("customer.{id}");
                        black_box(arcs.get(&key).cloned());
                    }
                }
                other => panic!("unknown variant {other}"),
            }
        }
    });
}
