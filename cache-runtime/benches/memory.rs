//! Bytes per entry, counted by the allocator: what each cache keeps alive for N entries of a
//! five-field customer keyed `customer.{id}`, against the keys and values alone (a `Vec`), a
//! raw `moka::future::Cache` and the `cached` crate's `#[cached]` (4.x).
//!
//! `cargo bench -p cache-runtime --bench memory [-- N...]` (default: 100000 1000000). Each
//! variant runs in a process of its own (this binary, re-run), so that nothing one leaves
//! behind counts against another. Two figures per entry: the bytes asked of the allocator,
//! and the bytes it handed out (`malloc_usable_size`: its size classes included). Every
//! variant's count of held entries is checked, so that nothing evicted makes a cache look
//! small.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};

use cache_runtime::Cache;

#[path = "support/cached_crate.rs"]
mod cached_crate;

struct Counting;

static ASKED: AtomicIsize = AtomicIsize::new(0);
static HANDED: AtomicIsize = AtomicIsize::new(0);

fn usable(ptr: *mut u8) -> isize {
    // SAFETY: `ptr` was returned by the system allocator and is not freed yet.
    unsafe { libc::malloc_usable_size(ptr.cast()) as isize }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            ASKED.fetch_add(layout.size() as isize, Ordering::Relaxed);
            HANDED.fetch_add(usable(ptr), Ordering::Relaxed);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ASKED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        HANDED.fetch_sub(usable(ptr), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(ptr);
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            ASKED.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            HANDED.fetch_add(usable(new) - before, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes held now: (asked, handed out).
fn held() -> (isize, isize) {
    (
        ASKED.load(Ordering::Relaxed),
        HANDED.load(Ordering::Relaxed),
    )
}

/// The value: a customer of five short fields.
#[derive(Clone, Debug)]
#[allow(dead_code)] // only held
pub struct Customer {
    id: String,
    name: String,
    email: String,
    phone: String,
    status: String,
}

fn customer(id: &str) -> Customer {
    Customer {
        id: id.to_owned(),
        name: "Ann Example".to_owned(),
        email: "ann@example.com".to_owned(),
        phone: "+33 1 23 45 67 89".to_owned(),
        status: "active".to_owned(),
    }
}

fn id(i: usize) -> String {
    format!("c{i:07}")
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, name = "memory::untagged")]
    async fn untagged(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }

    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"], name = "memory::two_tags")]
    async fn two_tags(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }

    #[cache_runtime::cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}", "tenant.acme", "segment.retail", "customer.{id}.orders"],
        name = "memory::five_tags"
    )]
    async fn five_tags(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }
}

/// What each variant is, in the order of the table.
const VARIANTS: &[(&str, &str)] = &[
    ("vec", "the keys and values alone (a `Vec`)"),
    ("moka", "raw `moka::future::Cache<String, Customer>`"),
    (
        "moka_expiry",
        "raw `moka::sync::Cache<String, Customer>` with per-entry expiry",
    ),
    ("cached", "`cached` 4.x `#[cached]` (`ttl_secs`)"),
    ("ours0", "`#[cached]`, no tags"),
    ("ours2", "`#[cached]`, 2 tags (`customer`, `customer.{id}`)"),
    ("ours5", "`#[cached]`, 5 tags (3 shared, 2 per id)"),
    (
        "ours2_read",
        "`#[cached]`, 2 tags, each entry read once since",
    ),
];

/// Fills one variant with `n` entries and returns the bytes it holds (asked, handed out).
async fn measure(variant: &str, n: usize) -> (isize, isize) {
    let ids: Vec<String> = (0..n).map(id).collect();
    let before = held();
    // Each arm keeps what it built alive until `after` is read.
    let after = match variant {
        "vec" => {
            let all: Vec<(String, Customer)> = ids
                .iter()
                .map(|id| (format!("customer.{id}"), customer(id)))
                .collect();
            let after = held();
            assert_eq!(all.len(), n);
            after
        }
        "moka" => {
            let raw: moka::future::Cache<String, Customer> = moka::future::Cache::new(2 * n as u64);
            for id in &ids {
                raw.insert(format!("customer.{id}"), customer(id)).await;
            }
            raw.run_pending_tasks().await;
            let after = held();
            assert_eq!(raw.entry_count(), n as u64, "raw moka evicted entries");
            after
        }
        "moka_expiry" => {
            struct Ten;
            impl moka::Expiry<String, Customer> for Ten {
                fn expire_after_create(
                    &self,
                    _: &String,
                    _: &Customer,
                    _: std::time::Instant,
                ) -> Option<std::time::Duration> {
                    Some(std::time::Duration::from_secs(600))
                }
            }
            let raw: moka::sync::Cache<String, Customer> = moka::sync::Cache::builder()
                .max_capacity(2 * n as u64)
                .expire_after(Ten)
                .build();
            for id in &ids {
                raw.insert(format!("customer.{id}"), customer(id));
            }
            raw.run_pending_tasks();
            let after = held();
            assert_eq!(raw.entry_count(), n as u64, "raw moka evicted entries");
            after
        }
        "cached" => {
            for id in &ids {
                cached_crate::find(id).await.unwrap();
            }
            let after = held();
            use cached::Cached;
            let size = cached_crate::FIND.read().await.cache_size();
            assert_eq!(size, n, "the cached crate evicted entries");
            after
        }
        ours => {
            let repo = Repo {
                cache: Cache::in_memory(n as u64 + n as u64 / 8),
            };
            for id in &ids {
                match ours {
                    "ours0" => drop(repo.untagged(id).await),
                    "ours2" | "ours2_read" => drop(repo.two_tags(id).await),
                    "ours5" => drop(repo.five_tags(id).await),
                    other => panic!("unknown variant {other}"),
                }
            }
            if ours == "ours2_read" {
                for id in &ids {
                    drop(repo.two_tags(id).await);
                }
            }
            let tier = repo.cache.in_process_tier().expect("an in-process tier");
            let count = tier.entry_count();
            let after = held();
            assert_eq!(count, n as u64, "the in-process tier evicted entries");
            let stats = repo.cache.stats();
            let (loads, hits): (u64, u64) = stats
                .methods
                .iter()
                .fold((0, 0), |(l, h), m| (l + m.loads, h + m.hits));
            let reads = if ours == "ours2_read" { n as u64 } else { 0 };
            assert_eq!(
                (loads, hits),
                (n as u64, reads),
                "each entry stored once, read once"
            );
            after
        }
    };
    (after.0 - before.0, after.1 - before.1)
}

fn child(variant: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (asked, handed) = rt.block_on(measure(variant, n));
    println!(
        "bytes {:.0} {:.0}",
        asked as f64 / n as f64,
        handed as f64 / n as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, variant, n] = args.as_slice() {
        if flag == "--variant" {
            return child(variant, n.parse().expect("a number of entries"));
        }
    }
    // `cargo bench` passes `--bench`; numbers are entry counts.
    let mut counts: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if counts.is_empty() {
        counts = vec![100_000, 1_000_000];
    }
    let me = std::env::current_exe().expect("this binary's path");
    print!("| bytes per entry (asked / handed out) |");
    for n in &counts {
        print!(" {n} entries |");
    }
    println!();
    println!("| --- |{}", " --- |".repeat(counts.len()));
    for (variant, what) in VARIANTS {
        print!("| {what} |");
        for n in &counts {
            let out = Command::new(&me)
                .args(["--variant", variant, &n.to_string()])
                .output()
                .expect("re-running this binary");
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().find_map(|l| l.strip_prefix("bytes "));
            match (out.status.success(), line) {
                (true, Some(line)) => {
                    let (asked, handed) = line.split_once(' ').unwrap();
                    print!(" {asked} / {handed} |");
                }
                _ => panic!(
                    "variant {variant} with {n} entries failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        println!();
    }
}
