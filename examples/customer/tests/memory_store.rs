//! The in-memory store behind the cached repository, no server needed: it folds the case of
//! e-mail addresses as the key's `lower` filter does (Unicode `to_lowercase`), so that the
//! cache never answers one spelling differently from the store.

use cache_runtime::{observe, Cache, CallOutcome};
use customer_example::application::{UpdateCustomerCommand, UpdateCustomerCommandHandler};
use customer_example::domain::{Customer, CustomerRepository, CustomerStatus, RepositoryError};
use customer_example::infrastructure::cache::InMemoryCustomerRepository;
use customer_example::infrastructure::persistence::{CustomerStore, InMemoryCustomerStore};

fn repository() -> InMemoryCustomerRepository {
    InMemoryCustomerRepository::new(InMemoryCustomerStore::default(), Cache::in_memory(100))
}

fn customer(id: &str, email: &str) -> Customer {
    Customer {
        id: id.to_owned(),
        name: format!("Customer {id}"),
        email: email.to_owned(),
        status: CustomerStatus::Active,
        created_at: 1_700_000_000_000,
        version: 0,
    }
}

/// Spellings of one address that differ beyond ASCII case: one cache key for all of them.
const SPELLINGS: [&str; 4] = ["ÄNN@x.com", "änn@x.com", "Änn@X.Com", " äNN@x.COM "];

/// Looks every spelling up through the cache, and asserts that each answer is the store's.
async fn assert_cache_agrees_with_store(
    repo: &InMemoryCustomerRepository,
    expected: Option<&Customer>,
) {
    for spelling in SPELLINGS {
        let cached = repo.find_by_email(spelling).await;
        let stored = repo.store().get_by_email(spelling.trim()).await;
        assert_eq!(
            cached, stored,
            "{spelling:?}: the cache contradicts the store"
        );
        assert_eq!(cached, Ok(expected.cloned()), "{spelling:?}");
    }
}

#[tokio::test]
async fn a_customer_saved_in_lower_case_is_found_by_any_case() {
    let repo = repository();
    let ann = repo.save(&customer("c1", "änn@x.com")).await.unwrap();
    assert_eq!(ann.version, 1);

    assert_eq!(
        repo.store().get_by_email("ÄNN@x.com").await,
        Ok(Some(ann.clone()))
    );
    let (upper, first) = observe(repo.find_by_email("ÄNN@x.com")).await;
    let (lower, second) = observe(repo.find_by_email("änn@x.com")).await;
    assert_eq!(upper, Ok(Some(ann.clone())));
    assert_eq!(lower, Ok(Some(ann.clone())));
    // One key for both spellings: the second lookup is served the first one's entry.
    assert_eq!(
        (first[0].outcome, second[0].outcome),
        (CallOutcome::Miss, CallOutcome::Hit)
    );
    assert_cache_agrees_with_store(&repo, Some(&ann)).await;
}

#[tokio::test]
async fn a_cached_miss_for_one_spelling_never_hides_the_customer_from_another() {
    let repo = repository();
    // Nobody has the address yet: the miss is cached under the key every spelling shares.
    assert_cache_agrees_with_store(&repo, None).await;

    let ann = repo.save(&customer("c1", "änn@x.com")).await.unwrap();
    assert_cache_agrees_with_store(&repo, Some(&ann)).await;

    repo.delete(&ann).await.unwrap();
    assert_cache_agrees_with_store(&repo, None).await;
}

#[tokio::test]
async fn an_address_differing_only_in_non_ascii_case_is_taken() {
    let repo = repository();
    repo.save(&customer("c1", "änn@x.com")).await.unwrap();
    let other = customer("c2", "ÄNN@x.com");
    assert_eq!(
        repo.save(&other).await,
        Err(RepositoryError::DuplicateEmail("ÄNN@x.com".into()))
    );
    assert_eq!(repo.find_by_id("c2").await, Ok(None));
}

#[tokio::test]
async fn saves_are_conditional_on_the_stored_version_here_too() {
    let store = InMemoryCustomerStore::default();
    let here = InMemoryCustomerRepository::new(store.clone(), Cache::in_memory(100));
    let there = InMemoryCustomerRepository::new(store.clone(), Cache::in_memory(100));
    let ann = here.save(&customer("c1", "ann@x.com")).await.unwrap();
    assert_eq!(ann.version, 1);
    assert_eq!(
        here.save(&customer("c1", "other@x.com")).await,
        Err(RepositoryError::Conflict("c1".into())),
        "creating a customer whose id is taken"
    );
    assert_eq!(there.find_by_id("c1").await, Ok(Some(ann.clone()))); // cached there

    let renamed = UpdateCustomerCommandHandler::new(here.clone())
        .handle(UpdateCustomerCommand {
            id: "c1".into(),
            name: Some("Renamed".into()),
            ..UpdateCustomerCommand::default()
        })
        .await
        .unwrap();
    assert_eq!(renamed.version, 2);
    assert_eq!(
        there.save(&ann).await,
        Err(RepositoryError::Conflict("c1".into())),
        "the stale copy cached there no longer saves"
    );
    let moved = UpdateCustomerCommandHandler::new(there.clone())
        .handle(UpdateCustomerCommand {
            id: "c1".into(),
            email: Some("moved@x.com".into()),
            ..UpdateCustomerCommand::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.email.as_str(), moved.version),
        ("Renamed", "moved@x.com", 3),
        "applied again to a fresh read: the rename is kept"
    );
    assert_eq!(store.get("c1").await, Ok(Some(moved.clone())));

    here.delete(&moved).await.unwrap();
    assert_eq!(
        there.save(&moved).await,
        Err(RepositoryError::NotFound("c1".into())),
        "a customer saved before and deleted since"
    );
}
