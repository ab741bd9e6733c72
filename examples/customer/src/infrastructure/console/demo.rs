//! The scripted walk-through: each call, what the cache did, how long it took.

use std::future::Future;
use std::time::{Duration, Instant};

use cache_runtime::{observe, Cache, Clock};

use crate::application::{UpdateCustomerCommand, UpdateCustomerCommandHandler};
use crate::domain::{Customer, CustomerRepository, CustomerStatus, RepositoryError};
use crate::infrastructure::cache::{
    first_outcome, outcome_meaning, outcome_name, CachedCustomerRepository,
};
use crate::infrastructure::persistence::CustomerStore;

async fn step<T: std::fmt::Debug>(what: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let (value, observed) = observe(call).await;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let cache = match first_outcome(&observed) {
        Some(outcome) => match outcome_meaning(outcome) {
            Some(meaning) => format!("{} ({meaning})", outcome_name(outcome)),
            None => outcome_name(outcome).to_owned(),
        },
        None => "-".to_owned(),
    };
    let key = observed.first().map(|o| o.key.as_str()).unwrap_or("");
    println!("{what:<42} {cache:<38} {elapsed:>8.3} ms  {key}");
    value
}

/// Runs the walk-through over `store`, with its own cache on a manual clock (so that the
/// stale window can be shown without waiting ten minutes).
pub async fn run<S: CustomerStore>(store: S) -> Result<(), RepositoryError> {
    let (clock, hand) = Clock::manual();
    let repository = CachedCustomerRepository::new(store, Cache::builder().clock(clock).build());
    let handler = UpdateCustomerCommandHandler::new(repository.clone());
    let now = super::now_millis();
    let id = format!("demo-{:06x}", fastrand::u32(..0xff_ffff));
    let ann = Customer {
        id: id.clone(),
        name: "Ann".into(),
        email: format!("{id}@example.com"),
        status: CustomerStatus::Active,
        created_at: now,
        version: 0,
    };
    step(
        "save(ann)                   invalidate",
        repository.save(&ann),
    )
    .await?;
    step("find_by_id", repository.find_by_id(&id)).await?;
    step("find_by_id", repository.find_by_id(&id)).await?;
    step(
        "find_by_email (upper case)",
        repository.find_by_email(&ann.email.to_uppercase()),
    )
    .await?;
    step("find_by_email", repository.find_by_email(&ann.email)).await?;
    step(
        "find_active_customers(1, 20)",
        repository.find_active_customers(1, 20),
    )
    .await?;
    step(
        "find_active_customers(1, 20)",
        repository.find_active_customers(1, 20),
    )
    .await?;

    let new_email = format!("{id}@new.example.com");
    let command = UpdateCustomerCommand {
        id: id.clone(),
        name: Some("Anna".into()),
        email: Some(new_email.clone()),
        ..UpdateCustomerCommand::default()
    };
    let updated = step(
        "update (name, e-mail)       invalidate",
        handler.handle(command),
    )
    .await?;
    let old = step(
        "find_by_email (old address)",
        repository.find_by_email(&ann.email),
    )
    .await?;
    println!(
        "{:<42} {}",
        "",
        if old.is_none() {
            "the old address no longer finds her"
        } else {
            "BUG: the old address still finds her"
        }
    );
    step(
        "find_by_email (new address)",
        repository.find_by_email(&new_email),
    )
    .await?;
    step("find_by_id", repository.find_by_id(&id)).await?;

    hand.advance(Duration::from_secs(601));
    println!("(10 minutes later: ttl 600 s, swr 60 s)");
    step("find_by_id", repository.find_by_id(&id)).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    step("find_by_id", repository.find_by_id(&id)).await?;
    step(
        "delete                      invalidate",
        repository.delete(&updated),
    )
    .await?;
    step("find_by_id", repository.find_by_id(&id)).await?;
    println!("\n{}", repository.cache().stats());
    Ok(())
}
