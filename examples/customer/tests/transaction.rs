//! The transaction scope against the MongoDB-wire server's multi-document transactions
//! (secantusdb 0.7.0b3 runs them with snapshot isolation: a transaction's writes are seen by
//! other sessions only once it commits, and an abort undoes them).
//!
//! A writer renames a customer in a transaction; a reader, outside it, reads between the
//! write and the commit (the committed, old name) and is held on a gate until the commit.
//! Without the scope, the write's invalidation went by before the read began, so the read
//! caches the old name and keeps serving it after the commit. With the scope, the
//! invalidation is applied when the scope ends, after the commit: the read's value is not kept.

#[path = "../../../tests/tests/support/read_gate.rs"]
mod read_gate;

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cache_runtime::{cached, invalidates, Cache};
use mongodb::bson::{doc, Document};
use mongodb::{Client, ClientSession, Collection};
use read_gate::ReadGate;
use support::mongo::{database, MongoServer};

struct Repo {
    cache: Cache,
    customers: Collection<Document>,
    gate: ReadGate,
}

impl Repo {
    /// Reads outside any transaction.
    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"])]
    async fn find_name(&self, id: &str) -> Result<Option<String>, String> {
        let found = self
            .customers
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| e.to_string())?;
        self.gate.pass().await;
        Ok(found.and_then(|d| d.get_str("name").ok().map(str::to_owned)))
    }

    /// Writes inside the caller's transaction.
    #[invalidates(tags = ["customer.{id}"])]
    async fn rename(
        &self,
        session: &mut ClientSession,
        id: &str,
        name: &str,
    ) -> Result<(), String> {
        self.customers
            .update_one(doc! { "_id": id }, doc! { "$set": { "name": name } })
            .session(session)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Renames customer 1 from Ann to Anna in a transaction while a reader reads it, held between
/// the write and the commit; returns what a read after the commit serves, and how many times
/// the database was read.
async fn read_after_commit(scoped: bool, test: &str) -> (Option<String>, u64) {
    let server = MongoServer::start();
    let client = Client::with_uri_str(&server.uri).await.unwrap();
    let customers = client.database(&database(test)).collection("customers");
    customers
        .insert_one(doc! { "_id": "1", "name": "Ann" })
        .await
        .unwrap();
    let repo = Arc::new(Repo {
        cache: Cache::in_memory(1_000),
        customers,
        gate: ReadGate::new(),
    });

    let mut session = client.start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    let mut slow = None;
    let work = async {
        repo.rename(&mut session, "1", "Anna").await.unwrap();
        repo.gate.held.store(true, Ordering::SeqCst);
        let reader = repo.clone();
        slow = Some(tokio::spawn(async move { reader.find_name("1").await }));
        repo.gate.reached.acquire().await.unwrap().forget(); // it read the committed row
        session.commit_transaction().await.unwrap();
    };
    if scoped {
        repo.cache.transaction(work).await;
    } else {
        work.await;
    }
    let slow = slow.unwrap();
    repo.gate.held.store(false, Ordering::SeqCst);
    repo.gate.release.add_permits(1);
    assert_eq!(
        slow.await.unwrap(),
        Ok(Some("Ann".into())),
        "the read overlapping the commit returns the old name: the server isolates the \
         transaction"
    );

    let after = repo.find_name("1").await.unwrap();
    let stats = repo.cache.stats();
    let method = stats
        .methods
        .iter()
        .find(|m| m.method.ends_with("find_name"))
        .unwrap();
    (after, method.loads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_scope_the_name_read_before_the_commit_stays_cached() {
    let (after, loads) = read_after_commit(false, "tx-unscoped").await;
    assert_eq!(after.as_deref(), Some("Ann"), "stale after the commit");
    assert_eq!(loads, 1, "served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_scope_a_read_after_the_commit_sees_it() {
    let (after, loads) = read_after_commit(true, "tx-scoped").await;
    assert_eq!(after.as_deref(), Some("Anna"));
    assert_eq!(
        loads, 2,
        "the read held over the commit did not keep its value"
    );
}
