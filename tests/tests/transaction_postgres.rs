//! The transaction scope against a real transactional database: PostgreSQL (the project's
//! machines run one on 127.0.0.1:5432, trust auth, database `test`; `CACHE_TEST_POSTGRES`
//! names another, as a `tokio-postgres` connection string). The same race against the
//! MongoDB-wire server's multi-document transactions is
//! `examples/customer/tests/transaction.rs`.
//!
//! A write runs in a transaction; a reader, autocommit on another connection, reads the row
//! between the write and the commit (the committed, old row) and is held on a gate until the
//! commit. Without the scope, the write's invalidation went by before the read began, so the
//! read caches the old row and keeps serving it after the commit. With the scope, the
//! invalidation is applied at the commit, after the read began, so its value is not kept.

#[path = "support/read_gate.rs"]
mod read_gate;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cache_runtime::{cached, invalidates, Cache};
use read_gate::ReadGate;
use tokio_postgres::{Client, NoTls, Transaction};

fn url() -> String {
    std::env::var("CACHE_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

async fn connect() -> Client {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {:?} ({e}): start it (./scripts/test installs \
                 Debian's postgresql when none answers) or set CACHE_TEST_POSTGRES",
                url()
            )
        });
    tokio::spawn(connection);
    client
}

struct Repo {
    cache: Cache,
    /// The reader's own connection, autocommit.
    reads: Client,
    table: String,
    gate: ReadGate,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"])]
    async fn find_name(&self, id: &str) -> Result<Option<String>, String> {
        let sql = format!("SELECT name FROM {} WHERE id = $1", self.table);
        let row = self
            .reads
            .query_opt(&sql, &[&id])
            .await
            .map_err(|e| e.to_string())?;
        self.gate.pass().await;
        Ok(row.map(|row| row.get(0)))
    }

    #[invalidates(tags = ["customer.{id}"])]
    async fn rename(&self, tx: &Transaction<'_>, id: &str, name: &str) -> Result<(), String> {
        let sql = format!("UPDATE {} SET name = $2 WHERE id = $1", self.table);
        tx.execute(&sql, &[&id, &name])
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Renames customer 1 from Ann to Anna in a transaction while a reader reads it, held between
/// the write and the commit; returns what a read after the commit serves, and how many
/// times the database was read.
async fn read_after_commit(scoped: bool) -> (Option<String>, u64) {
    let mut writes = connect().await;
    let table = format!("cache_tx_{}_{}", std::process::id(), fastrand::u32(..));
    writes
        .batch_execute(&format!(
            "CREATE TABLE {table} (id text PRIMARY KEY, name text NOT NULL);
             INSERT INTO {table} VALUES ('1', 'Ann');"
        ))
        .await
        .unwrap();
    let repo = Arc::new(Repo {
        cache: Cache::in_memory(1_000),
        reads: connect().await,
        table: table.clone(),
        gate: ReadGate::new(),
    });

    let tx = writes.transaction().await.unwrap();
    let mut slow = None;
    let work = async {
        repo.rename(&tx, "1", "Anna").await.unwrap();
        repo.gate.held.store(true, Ordering::SeqCst);
        let reader = repo.clone();
        slow = Some(tokio::spawn(async move { reader.find_name("1").await }));
        repo.gate.reached.acquire().await.unwrap().forget(); // it read the committed row
        tx.commit().await.unwrap();
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
        "the read overlapping the commit returns the old row"
    );

    let after = repo.find_name("1").await.unwrap();
    let stats = repo.cache.stats();
    let row = stats
        .methods
        .iter()
        .find(|m| m.method.ends_with("find_name"))
        .unwrap();
    writes
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    (after, row.loads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_scope_the_row_read_before_the_commit_stays_cached() {
    let (after, loads) = read_after_commit(false).await;
    assert_eq!(after.as_deref(), Some("Ann"), "stale after the commit");
    assert_eq!(loads, 1, "served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_scope_a_read_after_the_commit_sees_it() {
    let (after, loads) = read_after_commit(true).await;
    assert_eq!(after.as_deref(), Some("Anna"));
    assert_eq!(
        loads, 2,
        "the read held over the commit did not keep its value"
    );
}
