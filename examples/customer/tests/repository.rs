//! The cached repository, the handler and the warmer against a real MongoDB-wire server. Loads
//! are counted with the driver's command monitoring (`find` commands the server received), not
//! with a counter in our code.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cache_runtime::{observe, Cache, CallOutcome};
use customer_example::application::{
    Precondition, UpdateCustomerCommand, UpdateCustomerCommandHandler,
};
use customer_example::domain::{Customer, CustomerRepository, CustomerStatus, RepositoryError};
use customer_example::infrastructure::cache::{CustomerCacheWarmer, MongoCustomerRepository};
use customer_example::infrastructure::persistence::MongoCustomerStore;
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use support::mongo::{database, MongoServer};

struct Fixture {
    repo: MongoCustomerRepository,
    finds: Arc<AtomicUsize>,
    database: String,
    server: MongoServer,
}

impl Fixture {
    /// Another instance of the application: a cache of its own (it hears nothing of this
    /// one's invalidations) over the same database.
    async fn other_instance(&self) -> MongoCustomerRepository {
        let store = MongoCustomerStore::connect(&self.server.uri, &self.database)
            .await
            .expect("MongoDB reachable");
        MongoCustomerRepository::new(store, Cache::in_memory(10_000))
    }

    /// `find` commands on the customers collection so far.
    fn finds(&self) -> usize {
        self.finds.load(Ordering::SeqCst)
    }
}

async fn fixture(test: &str) -> Fixture {
    let server = MongoServer::start();
    let finds = Arc::new(AtomicUsize::new(0));
    let mut options = ClientOptions::parse(&server.uri)
        .await
        .expect("a valid URI");
    let counter = finds.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event {
            if started.command_name == "find" {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    }));
    let store = MongoCustomerStore::with_options(options, &database(test))
        .await
        .expect("MongoDB reachable");
    Fixture {
        repo: MongoCustomerRepository::new(store, Cache::in_memory(10_000)),
        finds,
        database: database(test),
        server,
    }
}

fn customer(i: u32) -> Customer {
    Customer {
        id: format!("c{i:03}"),
        name: format!("Customer {i}"),
        email: format!("customer{i}@example.com"),
        status: CustomerStatus::Active,
        created_at: 1_700_000_000_000 + i64::from(i) * 1_000,
        version: 0,
    }
}

/// `customer(i)` as [`seed`] saved it: at version 1.
fn saved(i: u32) -> Customer {
    Customer {
        version: 1,
        ..customer(i)
    }
}

async fn seed(fx: &Fixture, n: u32) {
    for i in 0..n {
        fx.repo.save(&customer(i)).await.unwrap();
    }
}

async fn outcome<T>(call: impl std::future::Future<Output = T>) -> (T, CallOutcome) {
    let (value, observed) = observe(call).await;
    (value, observed[0].outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_read_method_misses_then_hits() {
    let fx = fixture("reads").await;
    seed(&fx, 3).await;
    let before = fx.finds();

    let (found, first) = outcome(fx.repo.find_by_id("c001")).await;
    let (_, second) = outcome(fx.repo.find_by_id("c001")).await;
    assert_eq!(found, Ok(Some(saved(1))));
    assert_eq!((first, second), (CallOutcome::Miss, CallOutcome::Hit));

    let (found, first) = outcome(fx.repo.find_by_email("CUSTOMER2@example.com")).await;
    let (_, second) = outcome(fx.repo.find_by_email("customer2@example.com")).await;
    assert_eq!(found, Ok(Some(saved(2))));
    assert_eq!((first, second), (CallOutcome::Miss, CallOutcome::Hit));

    let (page, first) = outcome(fx.repo.find_active_customers(1, 20)).await;
    let (_, second) = outcome(fx.repo.find_active_customers(1, 20)).await;
    assert_eq!(
        page.unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["c002", "c001", "c000"],
        "newest first"
    );
    assert_eq!((first, second), (CallOutcome::Miss, CallOutcome::Hit));

    assert_eq!(fx.finds() - before, 3, "MongoDB saw one find per method");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_drops_the_id_the_lists_and_every_email_lookup() {
    let fx = fixture("save").await;
    seed(&fx, 3).await;
    fx.repo.find_by_id("c001").await.unwrap();
    fx.repo
        .find_by_email("customer1@example.com")
        .await
        .unwrap();
    fx.repo.find_active_customers(1, 20).await.unwrap();

    let mut moved = saved(1);
    moved.name = "Renamed".into();
    moved.email = "moved@example.com".into();
    let moved = fx.repo.save(&moved).await.unwrap();
    assert_eq!(moved.version, 2);

    let (by_id, o1) = outcome(fx.repo.find_by_id("c001")).await;
    let (old, o2) = outcome(fx.repo.find_by_email("customer1@example.com")).await;
    let (page, o3) = outcome(fx.repo.find_active_customers(1, 20)).await;
    assert_eq!(by_id, Ok(Some(moved.clone())));
    assert_eq!(old, Ok(None), "the old e-mail no longer finds the customer");
    assert!(page.unwrap().contains(&moved));
    assert_eq!(
        (o1, o2, o3),
        (CallOutcome::Miss, CallOutcome::Miss, CallOutcome::Miss)
    );
    assert_eq!(
        fx.repo.find_by_email("moved@example.com").await,
        Ok(Some(moved))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_unknown_email_is_dropped_when_a_customer_takes_the_address() {
    let fx = fixture("new-address").await;
    seed(&fx, 2).await;
    assert_eq!(fx.repo.find_by_email("new@example.com").await, Ok(None)); // cached: nobody
    let mut moved = saved(1);
    moved.email = "new@example.com".into();
    let moved = fx.repo.save(&moved).await.unwrap();
    assert_eq!(
        fx.repo.find_by_email("NEW@example.com").await,
        Ok(Some(moved))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_need_encoding_are_invalidated_everywhere() {
    let fx = fixture("encoded-ids").await;
    let odd = Customer {
        id: "acme.42/x".into(),
        ..customer(9)
    };
    let odd = fx.repo.save(&odd).await.unwrap();
    fx.repo.find_by_email(&odd.email).await.unwrap();
    let renamed = Customer {
        name: "Renamed".into(),
        email: "renamed@example.com".into(),
        ..odd.clone()
    };
    fx.repo.save(&renamed).await.unwrap();
    assert_eq!(
        fx.repo.find_by_email(&odd.email).await,
        Ok(None),
        "the result tag matched the template's encoding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_customer_from_every_cached_view() {
    let fx = fixture("delete").await;
    seed(&fx, 3).await;
    let c = saved(2);
    fx.repo.find_by_id(&c.id).await.unwrap();
    fx.repo.find_by_email(&c.email).await.unwrap();
    fx.repo.find_active_customers(1, 20).await.unwrap();
    fx.repo.delete(&c).await.unwrap();
    assert_eq!(fx.repo.find_by_id(&c.id).await, Ok(None));
    assert_eq!(fx.repo.find_by_email(&c.email).await, Ok(None));
    assert!(!fx
        .repo
        .find_active_customers(1, 20)
        .await
        .unwrap()
        .contains(&c));
    assert_eq!(
        fx.repo.delete(&c).await,
        Err(RepositoryError::NotFound(c.id.clone()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_active_customers_fills_their_entries() {
    let fx = fixture("fill").await;
    seed(&fx, 5).await;
    let before = fx.finds();
    let page = fx.repo.find_active_customers(1, 20).await.unwrap();
    assert_eq!(page.len(), 5);
    for customer in &page {
        let (found, outcome) = outcome(fx.repo.find_by_id(&customer.id)).await;
        assert_eq!(found, Ok(Some(customer.clone())));
        assert_eq!(
            outcome,
            CallOutcome::Hit,
            "{} was filled by the page",
            customer.id
        );
    }
    assert_eq!(fx.finds() - before, 1, "one find: the page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_one_with_limit_20_and_with_limit_50_are_different_entries() {
    let fx = fixture("pages").await;
    seed(&fx, 60).await;
    let twenty = fx.repo.find_active_customers(1, 20).await.unwrap();
    let fifty = fx.repo.find_active_customers(1, 50).await.unwrap();
    assert_eq!((twenty.len(), fifty.len()), (20, 50));
    assert_eq!(twenty[..], fifty[..20]);
    assert_eq!(
        fx.repo.find_active_customers(3, 20).await.unwrap().len(),
        20
    );
    assert_eq!(fx.repo.find_active_customers(4, 20).await.unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_email_is_rejected() {
    let fx = fixture("duplicate").await;
    seed(&fx, 2).await;
    let mut copy = saved(1);
    copy.email = "CUSTOMER0@example.com".into();
    assert_eq!(
        fx.repo.save(&copy).await,
        Err(RepositoryError::DuplicateEmail(copy.email.clone()))
    );
    assert_eq!(
        fx.repo.find_by_id("c001").await,
        Ok(Some(saved(1))),
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_updates_through_the_cache_and_reports_unknown_ids() {
    let fx = fixture("handler").await;
    seed(&fx, 2).await;
    let handler = UpdateCustomerCommandHandler::new(fx.repo.clone());
    fx.repo.find_by_id("c001").await.unwrap(); // cached: the handler's load is a hit
    let (updated, observed) = observe(handler.handle(UpdateCustomerCommand {
        id: "c001".into(),
        name: Some("Anna".into()),
        email: Some("anna@example.com".into()),
        ..UpdateCustomerCommand::default()
    }))
    .await;
    let updated = updated.unwrap();
    assert_eq!(observed[0].outcome, CallOutcome::Hit);
    assert_eq!(
        (updated.name.as_str(), updated.email.as_str()),
        ("Anna", "anna@example.com")
    );
    assert_eq!(fx.repo.find_by_id("c001").await, Ok(Some(updated)));
    assert_eq!(
        fx.repo.find_by_email("customer1@example.com").await,
        Ok(None)
    );

    let missing = handler
        .handle(UpdateCustomerCommand {
            id: "nobody".into(),
            name: Some("X".into()),
            ..UpdateCustomerCommand::default()
        })
        .await;
    assert_eq!(missing, Err(RepositoryError::NotFound("nobody".into())));
    let taken = handler
        .handle(UpdateCustomerCommand {
            id: "c000".into(),
            email: Some("anna@example.com".into()),
            ..UpdateCustomerCommand::default()
        })
        .await;
    assert_eq!(
        taken,
        Err(RepositoryError::DuplicateEmail("anna@example.com".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_are_conditional_on_the_stored_version() {
    let fx = fixture("versions").await;
    seed(&fx, 2).await;
    let conflict = || Err(RepositoryError::Conflict("c001".into()));

    let mut copy = saved(1);
    copy.name = "First".into();
    let first = fx.repo.save(&copy).await.unwrap();
    assert_eq!((first.name.as_str(), first.version), ("First", 2));
    copy.name = "Second".into();
    assert_eq!(
        fx.repo.save(&copy).await,
        conflict(),
        "a copy at version 1 no longer saves"
    );
    let created_again = Customer {
        email: "other@example.com".into(),
        ..customer(1)
    };
    assert_eq!(
        fx.repo.save(&created_again).await,
        conflict(),
        "creating a customer whose id is taken"
    );
    assert_eq!(
        fx.repo.find_by_id_fresh("c001").await,
        Ok(Some(first)),
        "nothing changed"
    );
    let gone = Customer {
        id: "c404".into(),
        version: 3,
        ..customer(4)
    };
    assert_eq!(
        fx.repo.save(&gone).await,
        Err(RepositoryError::NotFound("c404".into()))
    );

    // Two creations of one new customer: one is saved, the other is refused.
    let rival = Customer {
        name: "Rival".into(),
        ..customer(7)
    };
    let first = customer(7);
    let (a, b) = tokio::join!(fx.repo.save(&first), fx.repo.save(&rival));
    let refused = usize::from(a.is_err()) + usize::from(b.is_err());
    assert_eq!(refused, 1, "{a:?} / {b:?}");
    assert!(matches!(
        a.err().or(b.err()),
        Some(RepositoryError::Conflict(id)) if id == "c007"
    ));
    assert_eq!(
        fx.repo
            .find_by_id_fresh("c007")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_stored_before_versions_existed_reads_as_0_and_saves_once_from_it() {
    let fx = fixture("legacy").await;
    let client = mongodb::Client::with_uri_str(&fx.server.uri).await.unwrap();
    client
        .database(&fx.database)
        .collection::<mongodb::bson::Document>("customers")
        .insert_many([
            mongodb::bson::doc! {
                "_id": "old", "name": "Old", "email": "old@example.com",
                "email_lower": "old@example.com", "status": "active", "created_at": 1_i64,
            },
            mongodb::bson::doc! {
                "_id": "null", "name": "Null", "email": "null@example.com",
                "email_lower": "null@example.com", "status": "active", "created_at": 1_i64,
                "version": null,
            },
        ])
        .await
        .unwrap();
    let null = fx.repo.find_by_id("null").await.unwrap().expect("readable");
    assert_eq!(null.version, 0, "a null version is version 0");
    assert_eq!(fx.repo.save(&null).await.unwrap().version, 1);
    let old = fx.repo.find_by_id("old").await.unwrap().expect("readable");
    assert_eq!((old.name.as_str(), old.version), ("Old", 0));
    let renamed = Customer {
        name: "Renamed".into(),
        ..old.clone()
    };
    assert_eq!(fx.repo.save(&renamed).await.unwrap().version, 1);
    assert_eq!(
        fx.repo.save(&old).await,
        Err(RepositoryError::Conflict("old".into())),
        "version 0 was taken"
    );
    assert_eq!(
        fx.repo.find_by_id("old").await.unwrap().map(|c| c.name),
        Some("Renamed".into())
    );
}

fn rename(id: &str, name: &str, precondition: Precondition) -> UpdateCustomerCommand {
    UpdateCustomerCommand {
        id: id.into(),
        name: Some(name.into()),
        precondition,
        ..UpdateCustomerCommand::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_from_a_stale_cached_copy_is_applied_again_to_a_fresh_read() {
    let fx = fixture("stale-copy").await;
    seed(&fx, 2).await;
    let other = fx.other_instance().await;
    let here = UpdateCustomerCommandHandler::new(fx.repo.clone());
    assert_eq!(fx.repo.find_by_id("c001").await, Ok(Some(saved(1))));

    let renamed = UpdateCustomerCommandHandler::new(other.clone())
        .handle(rename("c001", "Renamed", Precondition::Any))
        .await
        .unwrap();
    assert_eq!(renamed.version, 2);
    let (cached, observed) = observe(fx.repo.find_by_id("c001")).await;
    assert_eq!(
        (cached, observed[0].outcome),
        (Ok(Some(saved(1))), CallOutcome::Hit),
        "this instance's copy is stale"
    );

    let moved = here
        .handle(UpdateCustomerCommand {
            id: "c001".into(),
            email: Some("moved@example.com".into()),
            ..UpdateCustomerCommand::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.email.as_str(), moved.version),
        ("Renamed", "moved@example.com", 3),
        "the other instance's change is kept, not overwritten from the stale copy"
    );
    assert_eq!(
        other.find_by_id_fresh("c001").await,
        Ok(Some(moved.clone()))
    );
    let (cached, observed) = observe(fx.repo.find_by_id("c001")).await;
    assert_eq!(
        (cached, observed[0].outcome),
        (Ok(Some(moved)), CallOutcome::Miss),
        "the stale copy was dropped with the fresh read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_with_a_precondition_applies_only_to_a_version_it_admits() {
    let fx = fixture("precondition").await;
    seed(&fx, 2).await;
    let other = fx.other_instance().await;
    let here = UpdateCustomerCommandHandler::new(fx.repo.clone());
    let there = UpdateCustomerCommandHandler::new(other.clone());
    assert_eq!(other.find_by_id("c001").await, Ok(Some(saved(1)))); // cached there

    let second = here
        .handle(rename("c001", "Second", Precondition::OneOf(vec![1])))
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    // There, the cached copy is at version 1, which the precondition admits: the save is
    // refused, and the fresh read (version 2) is not admitted either. Nothing is retried.
    assert_eq!(
        there
            .handle(rename("c001", "Lost", Precondition::OneOf(vec![1])))
            .await,
        Err(RepositoryError::Conflict("c001".into()))
    );
    assert_eq!(
        fx.repo.find_by_id_fresh("c001").await,
        Ok(Some(second.clone()))
    );
    assert_eq!(
        other.find_by_id("c001").await,
        Ok(Some(second)),
        "after the refusal, a client re-reading there is not served the stale copy"
    );
    // Cached there at version 2 now; saved here at 3.
    here.handle(rename("c001", "Between", Precondition::OneOf(vec![2])))
        .await
        .unwrap();
    // A precondition on the stored version: the cached copy (version 2) is not admitted, so
    // the handler reads afresh, finds version 3 and saves.
    let third = there
        .handle(rename("c001", "Third", Precondition::OneOf(vec![7, 3])))
        .await
        .unwrap();
    assert_eq!((third.name.as_str(), third.version), ("Third", 4));
    assert_eq!(
        here.handle(rename("c001", "Never", Precondition::OneOf(vec![])))
            .await,
        Err(RepositoryError::Conflict("c001".into())),
        "an If-Match with no version of ours admits none"
    );
    assert_eq!(
        fx.repo
            .find_by_id_fresh("c001")
            .await
            .unwrap()
            .unwrap()
            .name,
        "Third"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warmer_warms_the_most_read_customers() {
    let fx = fixture("warmer").await;
    seed(&fx, 10).await;
    // Real traffic: c007 read 9 times, c003 6 times, c005 3 times, the rest once.
    for (id, reads) in [
        ("c007", 9),
        ("c003", 6),
        ("c005", 3),
        ("c001", 1),
        ("c002", 1),
    ] {
        for _ in 0..reads {
            fx.repo
                .cache()
                .invalidate_key(&format!("customer.{id}"))
                .await
                .unwrap(); // each read goes to MongoDB
            fx.repo.find_by_id(id).await.unwrap();
        }
    }
    fx.repo.cache().clear().await.unwrap();

    let hot = fx
        .repo
        .cache()
        .hot_keys("CustomerRepository::find_by_id", 100);
    let ids = CustomerCacheWarmer::<MongoCustomerRepository>::top_ids(&hot, 3);
    assert_eq!(ids, ["c007", "c003", "c005"]);
    let before = fx.finds();
    let report = CustomerCacheWarmer::new(fx.repo.clone())
        .warm(&ids, 2, 20, || {})
        .await
        .unwrap();
    assert_eq!((report.customers, report.pages), (3, 2));
    assert_eq!(
        fx.finds() - before,
        3,
        "the three customers in one query (a batch), then two pages"
    );
    for id in ["c007", "c003", "c005"] {
        assert_eq!(
            outcome(fx.repo.find_by_id(id)).await.1,
            CallOutcome::Hit,
            "{id} is warm"
        );
    }
    let before = fx.finds();
    assert_eq!(
        outcome(fx.repo.find_by_id("c001")).await.1,
        CallOutcome::Hit,
        "c001 was not among the top 3, but the pages of active customers filled it"
    );
    assert_eq!(fx.finds(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_parallel_reads_of_a_cold_key_reach_mongodb_once() {
    let fx = fixture("stampede").await;
    seed(&fx, 2).await;
    let before = fx.finds();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let repo = fx.repo.clone();
            tokio::spawn(async move { repo.find_by_id("c001").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(Some(saved(1))));
    }
    assert_eq!(fx.finds() - before, 1, "MongoDB received one find");
}
