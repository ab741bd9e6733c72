//! Instruction counts of the batch and single hit paths, for `valgrind --tool=callgrind`:
//! run as `batch_instructions <variant> <iterations>`, once with 0 iterations for the set-up.
//! Unlike timings, the counts repeat exactly on a shared, noisy machine.
//!
//! `scripts/instructions` runs it and prints instructions per call of each variant.

#[path = "support/batch_repo.rs"]
mod batch_repo;
#[path = "support/customer.rs"]
mod customer;

use std::collections::HashMap;
use std::hint::black_box;

use batch_repo::Repo;
use cache_runtime::Cache;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let variant = args.next().unwrap_or_else(|| "batch".into());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let repo = Repo {
        cache: Cache::in_memory(100_000),
    };
    let ids: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    rt.block_on(async {
        repo.find_by_ids(&ids).await.unwrap();
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
                other => panic!("unknown variant {other}"),
            }
        }
    });
}
