//! The conformance suite every [`MetadataStore`] backend must pass.
//!
//! One async function, [`run`], called by each backend's tests against a fresh, empty store:
//! the memory and embedded stores' unit tests, and `tierlog-tests` against a real etcd (this
//! module is public with the crate's `conformance` feature for that). It checks the trait
//! contract, not any backend's internals. It panics on the first violation.
//!
//! Lease checks wait for real expiry (2 s TTLs), so the suite takes some seconds. Nothing else
//! may write to the store while it runs: it checks exact revisions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::controller::{ControllerElection, ControllerInfo};
use crate::error::ErrorKind;
use crate::nodes::{NodeInfo, NodeRegistry};
use crate::partition_state::{PartitionState, PartitionStateRegistry, Versioned};
use crate::producer_ids::{PRODUCER_IDS_KEY, ProducerIdRegistry};
use crate::registry::encode_json;
use crate::store::{
    Compare, KeyValue, LeaseId, MetadataStore, MetadataStoreExt, Op, Precondition, WatchEvent,
    WatchStream,
};
use crate::transactions::{TransactionRegistry, TxnMeta, TxnOffset, TxnState};
use crate::types::{NodeId, TopicId};

/// How long a check waits for a watch event before failing: lease expiry on etcd takes up to
/// a TTL plus about a second, and CI machines are slow.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The TTL of leases the suite lets expire.
const SHORT_TTL: Duration = Duration::from_secs(2);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn keys(store: &dyn MetadataStore, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

/// Runs every check against `store`, which must be empty and not written by anyone else
/// meanwhile. Pass the only handle: the last check drops it and expects open watch streams to
/// end.
pub async fn run(store: Arc<dyn MetadataStore>) {
    empty(store.as_ref()).await;
    put_get(store.as_ref()).await;
    list_prefix(store.as_ref()).await;
    preconditions(store.as_ref()).await;
    atomicity(store.as_ref()).await;
    delete_prefix(store.as_ref()).await;
    invalid_txns(store.as_ref()).await;
    concurrent_put_if(Arc::clone(&store)).await;
    concurrent_cas_increments(Arc::clone(&store)).await;
    watch_sees_changes_in_order(store.as_ref()).await;
    watch_replays_from_a_past_revision(store.as_ref()).await;
    watch_is_cancel_safe(store.as_ref()).await;
    watch_orders_concurrent_writers(Arc::clone(&store)).await;
    lease_revoke_deletes_its_keys(store.as_ref()).await;
    lease_rejects_unknown_leases(store.as_ref()).await;
    lease_kept_alive_outlives_its_ttl(store.as_ref()).await;
    lease_expiry_deletes_its_keys(store.as_ref()).await;
    watch_ends_when_the_store_is_dropped(store).await;
}

/// The next event of `stream`, failing the suite after [`EVENT_TIMEOUT`].
pub async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// The next item of `stream` (`None`: it ended), or `Err` after `timeout`. For tests that
/// expect a stream to fail or end.
pub async fn next_item(
    stream: &mut WatchStream,
    timeout: Duration,
) -> Result<Option<crate::Result<WatchEvent>>, tokio::time::error::Elapsed> {
    tokio::time::timeout(timeout, stream.next()).await
}

fn put_event(key: &str, value: &str, create_revision: u64, mod_revision: u64) -> WatchEvent {
    WatchEvent::Put(KeyValue {
        key: key.into(),
        value: b(value),
        create_revision,
        mod_revision,
    })
}

fn delete_event(key: &str, revision: u64) -> WatchEvent {
    WatchEvent::Delete {
        key: key.into(),
        mod_revision: revision,
    }
}

async fn empty(store: &dyn MetadataStore) {
    // 0 for a new local store; etcd starts at 1. Either way nothing below changes it.
    let base = store.current_revision().await.expect("rev");
    assert!(base <= 1, "an empty store at revision {base}");
    assert_eq!(store.get("/nothing").await.expect("get"), None);
    assert!(store.list("").await.expect("list").is_empty());
    // A transaction that changes nothing does not bump the revision.
    let r = store.txn(vec![], vec![]).await.expect("empty txn");
    assert!(r.succeeded);
    assert_eq!(r.revision, base);
    assert!(!store.delete("/nothing").await.expect("delete absent"));
    let r = store
        .txn(
            vec![],
            vec![Op::delete("/nothing"), Op::delete_prefix("/no/")],
        )
        .await
        .expect("no-op deletes");
    assert!(r.succeeded);
    assert_eq!(store.current_revision().await.expect("rev"), base);
}

async fn put_get(store: &dyn MetadataStore) {
    let base = store.current_revision().await.expect("rev");
    let r1 = store.put("/pg/a", b("one")).await.expect("put");
    assert_eq!(r1, base + 1);
    let kv = store.get("/pg/a").await.expect("get").expect("present");
    assert_eq!(
        kv,
        KeyValue {
            key: "/pg/a".into(),
            value: b("one"),
            create_revision: r1,
            mod_revision: r1,
        }
    );
    // Overwrite: mod_revision moves, create_revision stays; revisions strictly increase.
    let r2 = store.put("/pg/a", b("two")).await.expect("put");
    assert!(r2 > r1);
    let kv = store.get("/pg/a").await.expect("get").expect("present");
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision),
        (b("two"), r1, r2)
    );
    assert_eq!(store.current_revision().await.expect("rev"), r2);

    // Empty values and binary values round-trip.
    store.put("/pg/empty", Bytes::new()).await.expect("put");
    let raw = Bytes::from_static(&[0, 255, 1, 254]);
    store.put("/pg/bin", raw.clone()).await.expect("put");
    assert_eq!(
        store
            .get("/pg/empty")
            .await
            .expect("get")
            .expect("present")
            .value,
        ""
    );
    assert_eq!(
        store
            .get("/pg/bin")
            .await
            .expect("get")
            .expect("present")
            .value,
        raw
    );

    // Delete, then put again: create_revision restarts.
    assert!(store.delete("/pg/a").await.expect("delete"));
    assert_eq!(store.get("/pg/a").await.expect("get"), None);
    let r3 = store.put("/pg/a", b("three")).await.expect("put");
    let kv = store.get("/pg/a").await.expect("get").expect("present");
    assert_eq!((kv.create_revision, kv.mod_revision), (r3, r3));
}

async fn list_prefix(store: &dyn MetadataStore) {
    for k in [
        "/ls/b",
        "/ls/a/2",
        "/ls/a/1",
        "/ls/a",
        "/ls0",
        "/lr",
        "/ls/\u{e9}",
    ] {
        store.put(k, b(k)).await.expect("put");
    }
    assert_eq!(
        keys(store, "/ls/").await,
        ["/ls/a", "/ls/a/1", "/ls/a/2", "/ls/b", "/ls/\u{e9}"]
    );
    assert_eq!(keys(store, "/ls/a").await, ["/ls/a", "/ls/a/1", "/ls/a/2"]);
    assert_eq!(keys(store, "/ls/a/1").await, ["/ls/a/1"]);
    assert!(keys(store, "/ls/c").await.is_empty());
    // Values and revisions come along.
    let all = store.list("/ls/b").await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].value, "/ls/b");
    assert!(all[0].mod_revision > 0);
    // "" lists everything, sorted.
    let everything = keys(store, "").await;
    let mut sorted = everything.clone();
    sorted.sort();
    assert_eq!(everything, sorted);
    assert!(everything.contains(&"/lr".to_owned()) && everything.contains(&"/ls0".to_owned()));
}

async fn preconditions(store: &dyn MetadataStore) {
    let key = "/pre/k";
    // Absent: passes when absent, fails when present.
    let r1 = store
        .put_if(key, b("1"), Precondition::Absent)
        .await
        .expect("absent ok");
    let err = store
        .put_if(key, b("x"), Precondition::Absent)
        .await
        .expect_err("absent fails");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains(key), "{err}");

    // ModRevision: passes on the exact revision, fails on any other, and on an absent key.
    let r2 = store
        .put_if(key, b("2"), Precondition::ModRevision(r1))
        .await
        .expect("mod rev ok");
    for stale in [r1, r2 + 1, 0] {
        let err = store
            .put_if(key, b("x"), Precondition::ModRevision(stale))
            .await
            .expect_err("stale mod rev");
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
    let err = store
        .put_if("/pre/missing", b("x"), Precondition::ModRevision(r2))
        .await
        .expect_err("mod rev on absent");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(store.get("/pre/missing").await.expect("get"), None);

    // Any: always passes.
    store
        .put_if(key, b("3"), Precondition::Any)
        .await
        .expect("any existing");
    store
        .put_if("/pre/any", b("3"), Precondition::Any)
        .await
        .expect("any absent");

    // Failed compares leave the value and revision alone; the result reports the revision.
    let before = store.current_revision().await.expect("rev");
    let r = store
        .txn(vec![Compare::absent(key)], vec![Op::put(key, b("nope"))])
        .await
        .expect("txn");
    assert!(!r.succeeded);
    assert_eq!(r.revision, before);
    assert_eq!(store.current_revision().await.expect("rev"), before);
    assert_eq!(
        store.get(key).await.expect("get").expect("present").value,
        "3"
    );

    // A compare-only transaction succeeds without changing anything.
    let kv = store.get(key).await.expect("get").expect("present");
    let r = store
        .txn(vec![Compare::mod_revision(key, kv.mod_revision)], vec![])
        .await
        .expect("txn");
    assert!(r.succeeded);
    assert_eq!(r.revision, before);
}

async fn atomicity(store: &dyn MetadataStore) {
    store.put("/atom/x", b("x0")).await.expect("put");
    store.put("/atom/gone", b("g")).await.expect("put");
    let x = store.get("/atom/x").await.expect("get").expect("present");
    let before = store.current_revision().await.expect("rev");

    // One failing compare among passing ones: nothing is applied.
    let ops = vec![
        Op::put("/atom/x", b("x1")),
        Op::put("/atom/y", b("y1")),
        Op::delete("/atom/gone"),
    ];
    let r = store
        .txn(
            vec![
                Compare::mod_revision("/atom/x", x.mod_revision),
                Compare::absent("/atom/y"),
                Compare::absent("/atom/gone"), // fails
            ],
            ops.clone(),
        )
        .await
        .expect("txn");
    assert!(!r.succeeded);
    assert_eq!(store.current_revision().await.expect("rev"), before);
    assert_eq!(
        store.get("/atom/x").await.expect("get").expect("x").value,
        "x0"
    );
    assert_eq!(store.get("/atom/y").await.expect("get"), None);
    assert!(store.get("/atom/gone").await.expect("get").is_some());

    // All compares pass: every op lands under one new revision.
    let r = store
        .txn(
            vec![
                Compare::mod_revision("/atom/x", x.mod_revision),
                Compare::absent("/atom/y"),
                Compare::new("/atom/gone", Precondition::Any),
            ],
            ops,
        )
        .await
        .expect("txn");
    assert!(r.succeeded);
    assert_eq!(r.revision, before + 1);
    let x = store.get("/atom/x").await.expect("get").expect("x");
    let y = store.get("/atom/y").await.expect("get").expect("y");
    assert_eq!((x.value.clone(), x.mod_revision), (b("x1"), r.revision));
    assert_eq!(
        (y.value, y.create_revision, y.mod_revision),
        (b("y1"), r.revision, r.revision)
    );
    assert_eq!(store.get("/atom/gone").await.expect("get"), None);
    assert_eq!(store.current_revision().await.expect("rev"), r.revision);
}

async fn delete_prefix(store: &dyn MetadataStore) {
    for k in ["/dp/t/0", "/dp/t/1", "/dp/t/1/x", "/dp/tt", "/dp/u"] {
        store.put(k, b(k)).await.expect("put");
    }
    let before = store.current_revision().await.expect("rev");
    let r = store
        .txn(
            vec![],
            vec![Op::delete_prefix("/dp/t/"), Op::put("/dp/marker", b("m"))],
        )
        .await
        .expect("delete prefix");
    assert!(r.succeeded);
    assert_eq!(r.revision, before + 1);
    assert_eq!(keys(store, "/dp/").await, ["/dp/marker", "/dp/tt", "/dp/u"]);
    // Deleting nothing changes nothing.
    let r = store
        .txn(vec![], vec![Op::delete_prefix("/dp/t/")])
        .await
        .expect("delete prefix again");
    assert!(r.succeeded);
    assert_eq!(r.revision, before + 1);
}

async fn invalid_txns(store: &dyn MetadataStore) {
    store.put("/inv/k", b("v")).await.expect("put");
    let before = store.current_revision().await.expect("rev");
    let cases: Vec<(Vec<Compare>, Vec<Op>)> = vec![
        (vec![], vec![Op::put("", b("v"))]),
        (vec![], vec![Op::delete("")]),
        (vec![], vec![Op::delete_prefix("")]),
        (vec![Compare::absent("")], vec![]),
        (
            vec![],
            vec![Op::put("/inv/a", b("1")), Op::put("/inv/a", b("2"))],
        ),
        (
            vec![],
            vec![Op::put("/inv/k", b("1")), Op::delete("/inv/k")],
        ),
        (
            vec![],
            vec![Op::delete_prefix("/inv/"), Op::put("/inv/k", b("1"))],
        ),
        // Rejected even when a compare would fail.
        (vec![Compare::absent("/inv/k")], vec![Op::put("", b("v"))]),
    ];
    for (compares, ops) in cases {
        let err = store
            .txn(compares.clone(), ops.clone())
            .await
            .expect_err(&format!("{compares:?} {ops:?}"));
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }
    assert_eq!(store.current_revision().await.expect("rev"), before);
    assert_eq!(
        store.get("/inv/k").await.expect("get").expect("k").value,
        "v"
    );
    assert_eq!(store.get("/inv/a").await.expect("get"), None);
    // Overlapping deletes are fine.
    let r = store
        .txn(
            vec![],
            vec![Op::delete("/inv/k"), Op::delete_prefix("/inv/")],
        )
        .await
        .expect("overlapping deletes");
    assert!(r.succeeded);
    assert_eq!(r.revision, before + 1);
}

async fn concurrent_put_if(store: Arc<dyn MetadataStore>) {
    let tasks = 32;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..tasks {
        let store = Arc::clone(&store);
        set.spawn(async move {
            store
                .put_if("/race/winner", b(&i.to_string()), Precondition::Absent)
                .await
                .map(|rev| (i, rev))
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined.expect("join") {
            Ok(won) => winners.push(won),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (i, rev) = winners[0];
    let kv = store
        .get("/race/winner")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((kv.value, kv.mod_revision), (b(&i.to_string()), rev));
}

/// Many tasks incrementing one counter with a CAS loop: no increment may be lost, and every
/// successful write gets a distinct revision.
async fn concurrent_cas_increments(store: Arc<dyn MetadataStore>) {
    store.put("/race/counter", b("0")).await.expect("put");
    let tasks: u64 = 8;
    let per_task: u64 = 10;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let store = Arc::clone(&store);
        set.spawn(async move {
            let mut revisions = Vec::new();
            for _ in 0..per_task {
                loop {
                    let kv = store
                        .get("/race/counter")
                        .await
                        .expect("get")
                        .expect("present");
                    let n: u64 = std::str::from_utf8(&kv.value)
                        .expect("utf8")
                        .parse()
                        .expect("number");
                    match store
                        .put_if(
                            "/race/counter",
                            b(&(n + 1).to_string()),
                            Precondition::ModRevision(kv.mod_revision),
                        )
                        .await
                    {
                        Ok(rev) => {
                            revisions.push(rev);
                            break;
                        }
                        Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
                    }
                }
            }
            revisions
        });
    }
    let mut revisions = Vec::new();
    while let Some(joined) = set.join_next().await {
        revisions.extend(joined.expect("join"));
    }
    let kv = store
        .get("/race/counter")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(kv.value, b(&(tasks * per_task).to_string()));
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len() as u64, tasks * per_task);
    assert_eq!(revisions.last().copied(), Some(kv.mod_revision));
}

/// Puts, overwrites, deletes, multi-op transactions and prefix deletes, seen by a prefix
/// watch exactly and in order; keys outside the prefix and failed transactions are not seen.
async fn watch_sees_changes_in_order(store: &dyn MetadataStore) {
    let mut watch = store.watch("/w/", 0).await.expect("watch");
    let mut other = store.watch("/w/b", 0).await.expect("watch");
    let r1 = store.put("/w/a", b("1")).await.expect("put");
    store.put("/wx", b("outside")).await.expect("put outside");
    let r2 = store.put("/w/a", b("2")).await.expect("put");
    let failed = store
        .txn(
            vec![Compare::absent("/w/a")],
            vec![Op::put("/w/a", b("no"))],
        )
        .await
        .expect("txn");
    assert!(!failed.succeeded);
    let r3 = store
        .txn(
            vec![],
            vec![
                Op::put("/w/b/1", b("b1")),
                Op::delete("/w/a"),
                Op::put("/w/b/2", b("b2")),
            ],
        )
        .await
        .expect("txn")
        .revision;
    let r4 = store
        .txn(vec![], vec![Op::delete_prefix("/w/b/")])
        .await
        .expect("delete prefix")
        .revision;
    let expected = vec![
        put_event("/w/a", "1", r1, r1),
        put_event("/w/a", "2", r1, r2),
        put_event("/w/b/1", "b1", r3, r3),
        delete_event("/w/a", r3),
        put_event("/w/b/2", "b2", r3, r3),
        delete_event("/w/b/1", r4),
        delete_event("/w/b/2", r4),
    ];
    let mut seen = Vec::new();
    for _ in 0..expected.len() {
        seen.push(next_event(&mut watch).await);
    }
    assert_eq!(seen, expected);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut other).await);
    }
    assert_eq!(
        seen,
        expected[2..]
            .iter()
            .filter(|e| e.key().starts_with("/w/b"))
            .cloned()
            .collect::<Vec<_>>()
    );
    // Nothing else is pending: the next change is the next event.
    let r5 = store.put("/w/z", b("z")).await.expect("put");
    assert_eq!(next_event(&mut watch).await, put_event("/w/z", "z", r5, r5));
}

/// A watch from a past revision replays history from there, then continues live.
async fn watch_replays_from_a_past_revision(store: &dyn MetadataStore) {
    let r1 = store.put("/replay/a", b("1")).await.expect("put");
    let r2 = store.put("/replay/b", b("2")).await.expect("put");
    assert!(store.delete("/replay/a").await.expect("delete"));
    let r3 = store.current_revision().await.expect("rev");
    let mut watch = store.watch("/replay/", r2).await.expect("watch");
    assert_eq!(
        next_event(&mut watch).await,
        put_event("/replay/b", "2", r2, r2)
    );
    assert_eq!(next_event(&mut watch).await, delete_event("/replay/a", r3));
    let r4 = store.put("/replay/c", b("3")).await.expect("put");
    assert_eq!(
        next_event(&mut watch).await,
        put_event("/replay/c", "3", r4, r4)
    );
    // From the very first of them: everything.
    let mut watch = store.watch("/replay/", r1).await.expect("watch");
    let revisions: Vec<u64> = [
        next_event(&mut watch).await,
        next_event(&mut watch).await,
        next_event(&mut watch).await,
        next_event(&mut watch).await,
    ]
    .iter()
    .map(WatchEvent::revision)
    .collect();
    assert_eq!(revisions, [r1, r2, r3, r4]);
}

/// Dropping a pending `next()` loses nothing; dropping one stream does not disturb another.
async fn watch_is_cancel_safe(store: &dyn MetadataStore) {
    let mut watch = store.watch("/cancel/", 0).await.expect("watch");
    let dropped = store.watch("/cancel/", 0).await.expect("watch");
    for _ in 0..3 {
        let idle = tokio::time::timeout(Duration::from_millis(50), watch.next()).await;
        assert!(idle.is_err(), "unexpected item {idle:?}");
    }
    drop(dropped);
    let r = store.put("/cancel/k", b("v")).await.expect("put");
    assert_eq!(
        next_event(&mut watch).await,
        put_event("/cancel/k", "v", r, r)
    );
}

/// Writers racing on different keys: the watcher sees every write once, revisions strictly
/// increasing.
async fn watch_orders_concurrent_writers(store: Arc<dyn MetadataStore>) {
    let mut watch = store.watch("/wrace/", 0).await.expect("watch");
    let (writers, each) = (4, 25);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = Arc::clone(&store);
        set.spawn(async move {
            for i in 0..each {
                store
                    .put(&format!("/wrace/{w}/{i}"), b("x"))
                    .await
                    .expect("put");
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("join");
    }
    let mut last = 0;
    let mut keys = std::collections::BTreeSet::new();
    for _ in 0..writers * each {
        let event = next_event(&mut watch).await;
        assert!(event.revision() > last, "{event:?} after revision {last}");
        last = event.revision();
        assert!(keys.insert(event.key().to_owned()), "{event:?} twice");
    }
    assert_eq!(last, store.current_revision().await.expect("rev"));
}

/// Keys under a lease go, all in one revision, when it is revoked; other keys stay; a plain
/// put detaches a key from its lease.
async fn lease_revoke_deletes_its_keys(store: &dyn MetadataStore) {
    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("grant");
    let ttl = store.keep_alive(lease).await.expect("keep alive");
    assert!(ttl >= Duration::from_secs(60), "{ttl:?}");
    store
        .put_with_lease("/lease/a", b("a"), lease)
        .await
        .expect("put");
    store
        .put_with_lease("/lease/b", b("b"), lease)
        .await
        .expect("put");
    store
        .put_with_lease("/lease/detached", b("d"), lease)
        .await
        .expect("put");
    store
        .put("/lease/detached", b("d2"))
        .await
        .expect("plain put detaches");
    store.put("/lease/plain", b("p")).await.expect("put");
    let mut watch = store.watch("/lease/", 0).await.expect("watch");
    let before = store.current_revision().await.expect("rev");

    store.revoke_lease(lease).await.expect("revoke");
    assert_eq!(
        keys(store, "/lease/").await,
        ["/lease/detached", "/lease/plain"]
    );
    assert_eq!(store.current_revision().await.expect("rev"), before + 1);
    let mut deleted = vec![next_event(&mut watch).await, next_event(&mut watch).await];
    deleted.sort_by(|x, y| x.key().cmp(y.key()));
    assert_eq!(
        deleted,
        [
            delete_event("/lease/a", before + 1),
            delete_event("/lease/b", before + 1)
        ]
    );

    // Revoked: no keep-alive, no puts; revoking again is fine.
    let err = store.keep_alive(lease).await.expect_err("revoked");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    store.revoke_lease(lease).await.expect("revoke twice");
    assert!(store.list("/lease/a").await.expect("list").is_empty());
}

/// A put under a lease that does not exist fails the whole transaction (when its compares
/// hold); invalid TTLs and lease ids are refused.
async fn lease_rejects_unknown_leases(store: &dyn MetadataStore) {
    let lease = store
        .grant_lease(Duration::from_secs(30))
        .await
        .expect("grant");
    store.revoke_lease(lease).await.expect("revoke");
    let before = store.current_revision().await.expect("rev");
    let err = store
        .txn(
            vec![],
            vec![
                Op::put("/unknown/plain", b("p")),
                Op::put_with_lease("/unknown/leased", b("l"), lease),
            ],
        )
        .await
        .expect_err("revoked lease");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(store.get("/unknown/plain").await.expect("get").is_none());
    assert_eq!(store.current_revision().await.expect("rev"), before);
    // A failing compare decides first, as in etcd: no error, nothing applied.
    store.put("/unknown/guard", b("g")).await.expect("put");
    let r = store
        .txn(
            vec![Compare::absent("/unknown/guard")],
            vec![Op::put_with_lease("/unknown/leased", b("l"), lease)],
        )
        .await
        .expect("compare fails first");
    assert!(!r.succeeded);

    let err = store
        .grant_lease(Duration::ZERO)
        .await
        .expect_err("zero ttl");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    let err = store
        .txn(
            vec![],
            vec![Op::put_with_lease("/unknown/x", b("x"), LeaseId(0))],
        )
        .await
        .expect_err("lease 0");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    let err = store
        .keep_alive(LeaseId(i64::MAX - 7))
        .await
        .expect_err("never granted");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Keep-alives at a third of the TTL keep a lease (and its key) alive well past one TTL.
async fn lease_kept_alive_outlives_its_ttl(store: &dyn MetadataStore) {
    let lease = store.grant_lease(SHORT_TTL).await.expect("grant");
    store
        .put_with_lease("/alive/k", b("v"), lease)
        .await
        .expect("put");
    let until = tokio::time::Instant::now() + SHORT_TTL * 2;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(SHORT_TTL / 4).await;
        let ttl = store.keep_alive(lease).await.expect("keep alive");
        assert!(ttl >= SHORT_TTL, "{ttl:?}");
    }
    assert!(store.get("/alive/k").await.expect("get").is_some());
    store.revoke_lease(lease).await.expect("revoke");
    assert!(store.get("/alive/k").await.expect("get").is_none());
}

/// A lease nobody keeps alive lapses: its keys are deleted in one revision, seen through a
/// watch (no fixed sleeps), and the lease is gone.
async fn lease_expiry_deletes_its_keys(store: &dyn MetadataStore) {
    let lease = store.grant_lease(SHORT_TTL).await.expect("grant");
    let granted = tokio::time::Instant::now();
    store
        .put_with_lease("/expire/1", b("1"), lease)
        .await
        .expect("put");
    store
        .put_with_lease("/expire/2", b("2"), lease)
        .await
        .expect("put");
    store.put("/expire/stays", b("s")).await.expect("put");
    let mut watch = store.watch("/expire/", 0).await.expect("watch");
    let first = next_event(&mut watch).await;
    let second = next_event(&mut watch).await;
    assert!(
        granted.elapsed() >= SHORT_TTL - Duration::from_millis(100),
        "expired after {:?}",
        granted.elapsed()
    );
    let mut deleted = vec![first, second];
    deleted.sort_by(|x, y| x.key().cmp(y.key()));
    let rev = deleted[0].revision();
    assert_eq!(
        deleted,
        [
            delete_event("/expire/1", rev),
            delete_event("/expire/2", rev)
        ]
    );
    assert_eq!(keys(store, "/expire/").await, ["/expire/stays"]);
    let err = store.keep_alive(lease).await.expect_err("lapsed");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = store
        .put_with_lease("/expire/late", b("x"), lease)
        .await
        .expect_err("lapsed lease");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Dropping the store (its last handle) ends its watch streams.
async fn watch_ends_when_the_store_is_dropped(store: Arc<dyn MetadataStore>) {
    let mut watch = store.watch("/", 0).await.expect("watch");
    let waiter = tokio::spawn(async move {
        loop {
            match watch.next().await {
                None => return true,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("watch failed instead of ending: {e}"),
            }
        }
    });
    drop(store);
    let ended = tokio::time::timeout(EVENT_TIMEOUT, waiter).await;
    assert!(
        matches!(ended, Ok(Ok(true))),
        "watch did not end: {ended:?}"
    );
}

// ---- cluster registries (nodes, partition states, controller) ------------------------------

/// Runs the cluster registry checks ([`nodes`], [`partition_states_create`],
/// [`partition_states_cas_list_delete`], [`controller_election`], [`producer_ids`],
/// [`transactions`]) against `store`, which must
/// hold nothing under `/tierlog/` and not be written by anyone else meanwhile (some checks
/// count revisions). Leases are granted with a long TTL and revoked, never left to lapse.
pub async fn cluster_registries(store: Arc<dyn MetadataStore>) {
    nodes(Arc::clone(&store)).await;
    partition_states_create(Arc::clone(&store)).await;
    controller_election(Arc::clone(&store)).await;
    producer_ids(Arc::clone(&store)).await;
    transactions(Arc::clone(&store)).await;
    partition_states_cas_list_delete(store).await;
}

fn node(id: NodeId) -> NodeInfo {
    NodeInfo {
        id,
        host: format!("node-{id}"),
        port: 9092,
        rack: (id % 2 == 0).then(|| "rack-a".to_owned()),
        incarnation: uuid::Uuid::new_v4(),
        started_ms: 1_700_000_000_000,
        listeners: Vec::new(),
    }
}

/// [`NodeRegistry`]: register, list by id, overwrite by a restarted process, deregister only
/// one's own incarnation, registrations gone with their lease. Leaves no node registered.
pub async fn nodes(store: Arc<dyn MetadataStore>) {
    let nodes = NodeRegistry::new(Arc::clone(&store));
    assert!(nodes.list().await.expect("list").is_empty());
    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");

    // Ids sort numerically, not as text (2 before 10).
    let (n10, n2) = (node(10), node(2));
    let rev10 = nodes.register(&n10, lease).await.expect("register 10");
    let rev2 = nodes.register(&n2, lease).await.expect("register 2");
    assert!(rev2 > rev10);
    assert_eq!(store.current_revision().await.expect("rev"), rev2);
    assert_eq!(
        nodes.list().await.expect("list"),
        vec![n2.clone(), n10.clone()]
    );
    assert!(
        store
            .get("/tierlog/nodes/0000000002")
            .await
            .expect("get")
            .is_some()
    );

    // A restarted process overwrites its predecessor's registration.
    let restarted = NodeInfo {
        port: 9093,
        ..node(2)
    };
    let other_lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("lease");
    nodes
        .register(&restarted, other_lease)
        .await
        .expect("re-register");
    assert_eq!(
        nodes.list().await.expect("list"),
        vec![restarted.clone(), n10.clone()]
    );

    // The predecessor's late deregistration leaves the successor alone.
    assert!(!nodes.deregister(2, n2.incarnation).await.expect("stale"));
    assert_eq!(nodes.list().await.expect("list").len(), 2);
    assert!(
        nodes
            .deregister(2, restarted.incarnation)
            .await
            .expect("own")
    );
    assert!(
        !nodes
            .deregister(2, restarted.incarnation)
            .await
            .expect("again")
    );
    assert_eq!(nodes.list().await.expect("list"), vec![n10.clone()]);

    // Revoking the lease removes the registrations attached to it.
    store.revoke_lease(lease).await.expect("revoke");
    assert!(nodes.list().await.expect("list").is_empty());
    let err = nodes.register(&n10, lease).await.expect_err("dead lease");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    store.revoke_lease(other_lease).await.expect("revoke");

    let err = nodes
        .register(&node(-1), other_lease)
        .await
        .expect_err("id");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

fn state(topic_id: TopicId, partition: i32) -> PartitionState {
    PartitionState {
        topic_id,
        partition,
        replicas: vec![1, 2, 3],
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2, 3],
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        damaged_replicas: Vec::new(),
    }
}

fn values(states: &[Versioned<PartitionState>]) -> Vec<(TopicId, i32)> {
    states
        .iter()
        .map(|s| (s.value.topic_id, s.value.partition))
        .collect()
}

/// [`PartitionStateRegistry::create_missing`]: batches of at most 64 puts, idempotent, existing
/// states left alone, guards. Leaves no partition state behind.
pub async fn partition_states_create(store: Arc<dyn MetadataStore>) {
    let states = PartitionStateRegistry::new(Arc::clone(&store));
    let t = TopicId::new_v4();
    assert_eq!(states.create_missing(&[], &[]).await.expect("none"), 0);

    // More than one transaction's worth, created once.
    let all: Vec<PartitionState> = (0..150).map(|p| state(t, p)).collect();
    let before = store.current_revision().await.expect("rev");
    assert_eq!(states.create_missing(&all, &[]).await.expect("create"), 150);
    let rev = store.current_revision().await.expect("rev");
    assert_eq!(rev, before + 3, "64 + 64 + 22 states, one transaction each");
    assert_eq!(states.create_missing(&all, &[]).await.expect("again"), 0);
    assert_eq!(store.current_revision().await.expect("rev"), rev);
    assert_eq!(states.list_topic(t).await.expect("list").len(), 150);

    // Existing states are left alone; only the missing ones are created.
    let current = states.get(t, 3).await.expect("get").expect("present");
    let moved = PartitionState {
        leader: 2,
        leader_epoch: 1,
        partition_epoch: 1,
        ..current.value.clone()
    };
    states
        .cas(&current, &moved, &[])
        .await
        .expect("cas")
        .expect("won");
    let more: Vec<PartitionState> = (0..160).map(|p| state(t, p)).collect();
    assert_eq!(states.create_missing(&more, &[]).await.expect("more"), 10);
    assert_eq!(
        states.get(t, 3).await.expect("get").expect("present").value,
        moved
    );

    // A failing guard writes nothing and says which compare failed.
    let guard_key = "/tierlog/test-guard";
    let guard_rev = store
        .put(guard_key, Bytes::from("x"))
        .await
        .expect("put guard");
    let t2 = TopicId::new_v4();
    let guarded = [state(t2, 0), state(t2, 1)];
    let stale = [Compare::mod_revision(guard_key, guard_rev + 100)];
    let err = states
        .create_missing(&guarded, &stale)
        .await
        .expect_err("guard");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains(guard_key), "{err}");
    assert!(states.list_topic(t2).await.expect("list").is_empty());
    let good = [Compare::mod_revision(guard_key, guard_rev)];
    assert_eq!(states.create_missing(&guarded, &good).await.expect("ok"), 2);

    // Invalid input is rejected before anything is written.
    let t3 = TopicId::new_v4();
    let err = states
        .create_missing(&[state(t3, 0), state(t3, 0)], &[])
        .await
        .expect_err("twice");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let bad = PartitionState {
        leader: 9,
        ..state(t3, 1)
    };
    let err = states
        .create_missing(&[state(t3, 0), bad], &[])
        .await
        .expect_err("leader");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(states.list_topic(t3).await.expect("list").is_empty());

    states.delete_topic(t).await.expect("delete");
    states.delete_topic(t2).await.expect("delete");
    assert!(states.list().await.expect("list").is_empty());
    assert!(store.delete(guard_key).await.expect("delete guard"));
}

/// [`PartitionStateRegistry`]: sorted listing, compare-and-swap (one winner per read,
/// guards, invalid successors), topic deletion, misplaced and undecodable values. Expects no
/// partition state at the start; leaves some behind.
pub async fn partition_states_cas_list_delete(store: Arc<dyn MetadataStore>) {
    let states = PartitionStateRegistry::new(Arc::clone(&store));
    let (a, b) = {
        let (x, y) = (TopicId::new_v4(), TopicId::new_v4());
        (x.min(y), x.max(y))
    };
    // Created out of order, listed sorted by (topic id, partition), numerically.
    let created = [state(b, 0), state(a, 10), state(a, 2), state(b, 1)];
    states.create_missing(&created, &[]).await.expect("create");
    assert_eq!(
        values(&states.list().await.expect("list")),
        vec![(a, 2), (a, 10), (b, 0), (b, 1)]
    );
    assert_eq!(
        values(&states.list_topic(a).await.expect("list")),
        vec![(a, 2), (a, 10)]
    );
    assert_eq!(states.get(a, 0).await.expect("get"), None);

    // CAS: the first writer wins, the second (same read) gets None.
    let current = states.get(a, 2).await.expect("get").expect("present");
    assert_eq!(
        store
            .get(&PartitionStateRegistry::key(a, 2))
            .await
            .expect("raw")
            .expect("present")
            .mod_revision,
        current.mod_revision
    );
    let shrunk = PartitionState {
        isr: vec![1],
        partition_epoch: 1,
        ..current.value.clone()
    };
    let rev = states
        .cas(&current, &shrunk, &[])
        .await
        .expect("cas")
        .expect("won");
    let now = states.get(a, 2).await.expect("get").expect("present");
    assert_eq!(
        now,
        Versioned {
            value: shrunk.clone(),
            mod_revision: rev
        }
    );
    assert_eq!(
        states.cas(&current, &shrunk, &[]).await.expect("stale"),
        None
    );

    // CAS: a failing guard is None too, and writes nothing.
    let expanded = PartitionState {
        isr: vec![1, 2],
        partition_epoch: 2,
        ..shrunk.clone()
    };
    let guard = [Compare::absent(PartitionStateRegistry::key(b, 0))];
    assert_eq!(
        states.cas(&now, &expanded, &guard).await.expect("guard"),
        None
    );
    assert_eq!(states.get(a, 2).await.expect("get"), Some(now.clone()));

    // CAS: invalid successors are rejected.
    for bad in [
        PartitionState {
            leader: 2,
            partition_epoch: 2,
            ..shrunk.clone()
        },
        PartitionState {
            isr: vec![1, 2],
            ..shrunk.clone()
        },
        PartitionState {
            leader_epoch: -1,
            partition_epoch: 2,
            ..shrunk.clone()
        },
        PartitionState {
            partition: 3,
            partition_epoch: 2,
            ..shrunk.clone()
        },
        PartitionState {
            isr: vec![7],
            partition_epoch: 2,
            ..shrunk.clone()
        },
    ] {
        let err = states.cas(&now, &bad, &[]).await.expect_err("invalid");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
    }
    // Going offline: no leader, new leader epoch.
    let offline = PartitionState {
        leader: PartitionState::NO_LEADER,
        leader_epoch: 1,
        partition_epoch: 2,
        ..shrunk
    };
    states
        .cas(&now, &offline, &[])
        .await
        .expect("cas")
        .expect("won");

    // Deleting a topic removes its states only.
    states.delete_topic(a).await.expect("delete");
    assert!(states.list_topic(a).await.expect("list").is_empty());
    assert_eq!(
        values(&states.list().await.expect("list")),
        vec![(b, 0), (b, 1)]
    );
    states.delete_topic(a).await.expect("delete again");

    // A state under the wrong key, or not JSON, is a Data error naming the key.
    let misplaced = PartitionStateRegistry::key(b, 7);
    let value = encode_json(&misplaced, &state(b, 8)).expect("encode");
    store.put(&misplaced, value).await.expect("put");
    let err = states.get(b, 7).await.expect_err("misplaced");
    assert_eq!(err.kind(), ErrorKind::Data);
    assert!(err.to_string().contains(&misplaced), "{err}");
    store
        .put(&misplaced, Bytes::from("not json"))
        .await
        .expect("put");
    assert_eq!(
        states.list().await.expect_err("junk").kind(),
        ErrorKind::Data
    );
}

fn info(node_id: NodeId) -> ControllerInfo {
    ControllerInfo {
        node_id,
        incarnation: uuid::Uuid::new_v4(),
    }
}

/// [`ControllerElection`]: one winner, the next after the winner's lease is revoked, guards
/// that fence a deposed controller, resign. Leaves no controller.
pub async fn controller_election(store: Arc<dyn MetadataStore>) {
    let election = ControllerElection::new(Arc::clone(&store));
    assert_eq!(election.current().await.expect("current"), None);
    let ttl = Duration::from_secs(60);
    let lease1 = store.grant_lease(ttl).await.expect("lease");
    let lease2 = store.grant_lease(ttl).await.expect("lease");
    let (one, two) = (info(1), info(2));

    // The first campaign wins, the second finds the key taken.
    let won1 = election
        .campaign(&one, lease1)
        .await
        .expect("campaign")
        .expect("won");
    assert_eq!(
        election.campaign(&two, lease2).await.expect("campaign"),
        None
    );
    assert_eq!(
        election.current().await.expect("current"),
        Some(Versioned {
            value: one.clone(),
            mod_revision: won1
        })
    );

    // The guard holds for the winner only.
    let probe = "/tierlog/probe";
    let raw = store.as_ref();
    let guarded = |rev| async move {
        raw.txn(
            vec![ControllerElection::guard(rev)],
            vec![Op::put(probe, Bytes::from("x"))],
        )
        .await
        .expect("txn")
        .succeeded
    };
    assert!(guarded(won1).await);
    assert!(!guarded(won1 + 1).await);

    // The winner's lease is revoked: its key goes, and the second node wins.
    store.revoke_lease(lease1).await.expect("revoke");
    assert_eq!(election.current().await.expect("current"), None);
    let won2 = election
        .campaign(&two, lease2)
        .await
        .expect("campaign")
        .expect("won");
    assert!(won2 > won1);
    assert!(!guarded(won1).await, "the old controller is fenced");
    assert!(guarded(won2).await);

    // Resigning with a stale revision leaves the holder alone; with ours it frees the key.
    election.resign(won1).await.expect("stale resign");
    assert_eq!(
        election.current().await.expect("current").map(|c| c.value),
        Some(two.clone())
    );
    election.resign(won2).await.expect("resign");
    assert_eq!(election.current().await.expect("current"), None);
    assert!(!guarded(won2).await, "the guard fails after resigning");
    election.resign(won2).await.expect("resign again");

    // A campaign under a dead lease is NotFound, and takes nothing.
    let err = election
        .campaign(&one, lease1)
        .await
        .expect_err("dead lease");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(election.current().await.expect("current"), None);
    store.revoke_lease(lease2).await.expect("revoke");
}

// ---- producer ids and transactions ----------------------------------------------------------

/// [`ProducerIdRegistry`]: the first block starts at 0, blocks follow each other, sizes must
/// be positive, and concurrent allocators get disjoint blocks that cover the range exactly.
/// Expects no producer-id counter; deletes it at the end.
pub async fn producer_ids(store: Arc<dyn MetadataStore>) {
    let ids = ProducerIdRegistry::new(Arc::clone(&store));
    assert_eq!(ids.allocate_block(10).await.expect("first"), 0..10);
    assert_eq!(ids.allocate_block(5).await.expect("second"), 10..15);
    for size in [0, -1, i64::MIN] {
        let err = ids.allocate_block(size).await.expect_err("size");
        assert_eq!(err.kind(), ErrorKind::Invalid, "size {size}");
    }

    // Racing allocators (spawned, so they interleave on a multi-threaded runtime).
    let tasks: Vec<_> = (0..8_i64)
        .map(|t| {
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut blocks = Vec::new();
                for i in 0..8 {
                    blocks.push(ids.allocate_block(1 + (t + i) % 3).await.expect("allocate"));
                }
                blocks
            })
        })
        .collect();
    // The two blocks above took 0..15.
    let mut blocks = Vec::new();
    for task in tasks {
        blocks.extend(task.await.expect("join"));
    }
    assert_eq!(blocks.len(), 8 * 8);
    let next = assert_contiguous(&mut blocks, 15);
    assert_eq!(ids.allocate_block(1).await.expect("last"), next..next + 1);
    assert!(
        store
            .delete(PRODUCER_IDS_KEY)
            .await
            .expect("delete counter")
    );
}

/// Sorts `blocks` and checks that they tile `start..end` with no gap and no overlap; returns
/// `end`.
pub(crate) fn assert_contiguous(blocks: &mut [std::ops::Range<i64>], start: i64) -> i64 {
    blocks.sort_by_key(|b| b.start);
    let mut next = start;
    for block in blocks.iter() {
        assert_eq!(block.start, next, "a gap or an overlap at {block:?}");
        next = block.end;
    }
    next
}

fn txn_meta(transactional_id: &str) -> TxnMeta {
    TxnMeta {
        transactional_id: transactional_id.to_owned(),
        producer_id: 1000,
        producer_epoch: 0,
        last_producer_id: -1,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::Empty,
        partitions: Default::default(),
        groups: Default::default(),
        pending_offsets: Default::default(),
        start_ms: -1,
        update_ms: 1_700_000_000_000,
        transaction_version: 2,
        coordinator_epoch: 0,
    }
}

/// A state with every field set away from its default, pending offsets included.
fn ongoing_txn(transactional_id: &str) -> TxnMeta {
    let offset = |offset, metadata: Option<&str>| TxnOffset {
        offset,
        leader_epoch: 4,
        metadata: metadata.map(str::to_owned),
        commit_ms: 1_700_000_000_500,
    };
    TxnMeta {
        producer_id: i64::MAX - 1,
        producer_epoch: i16::MAX - 1,
        last_producer_id: 999,
        last_producer_epoch: 12,
        timeout_ms: 900_000,
        state: TxnState::Ongoing,
        partitions: [
            ("orders".to_owned(), [0, 2, 7].into()),
            ("audit.log".to_owned(), [0].into()),
        ]
        .into(),
        groups: ["billing".to_owned(), "group/with%slash".to_owned()].into(),
        pending_offsets: [
            (
                "billing".to_owned(),
                [
                    (("orders".to_owned(), 0), offset(100, Some("m"))),
                    (("orders".to_owned(), 2), offset(5, None)),
                ]
                .into(),
            ),
            (
                "group/with%slash".to_owned(),
                [(("audit.log".to_owned(), 0), offset(0, Some("")))].into(),
            ),
        ]
        .into(),
        start_ms: 1_700_000_000_100,
        update_ms: 1_700_000_000_600,
        transaction_version: 1,
        coordinator_epoch: 3,
        ..txn_meta(transactional_id)
    }
}

fn rev(v: &Versioned<TxnMeta>) -> i64 {
    i64::try_from(v.mod_revision).expect("revision fits i64")
}

/// [`TransactionRegistry`]: create-only and compare-and-swap puts, every field (and every
/// state) round-tripped, ids with `/` and `%` kept apart, sorted listing, deletes that compare
/// the revision, misplaced values. Expects no transaction state; leaves none behind.
pub async fn transactions(store: Arc<dyn MetadataStore>) {
    let txns = TransactionRegistry::new(Arc::clone(&store));
    assert!(txns.list().await.expect("list").is_empty());
    assert_eq!(txns.get("app").await.expect("get"), None);

    // Create-only: the first put wins, a second create finds it taken.
    let created = txns
        .put(&txn_meta("app"), None)
        .await
        .expect("create")
        .expect("absent");
    assert_eq!(created.value, txn_meta("app"));
    assert_eq!(
        store.current_revision().await.expect("rev"),
        created.mod_revision
    );
    assert_eq!(txns.put(&txn_meta("app"), None).await.expect("again"), None);
    assert_eq!(txns.get("app").await.expect("get"), Some(created.clone()));

    // Update on the revision read: every field round-trips; a stale revision loses.
    let ongoing = ongoing_txn("app");
    let updated = txns
        .put(&ongoing, Some(rev(&created)))
        .await
        .expect("update")
        .expect("unchanged");
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(txns.get("app").await.expect("get"), Some(updated.clone()));
    assert_eq!(
        txns.put(&txn_meta("app"), Some(rev(&created)))
            .await
            .expect("stale"),
        None
    );
    assert_eq!(
        txns.get("app").await.expect("get").expect("present").value,
        ongoing
    );
    // A revision never matches an absent id.
    assert_eq!(
        txns.put(&txn_meta("new"), Some(rev(&updated)))
            .await
            .expect("absent"),
        None
    );
    assert_eq!(txns.get("new").await.expect("get"), None);

    // Every state round-trips.
    let mut current = updated;
    for state in TxnState::ALL {
        let next = TxnMeta {
            state: state.clone(),
            ..current.value.clone()
        };
        current = txns
            .put(&next, Some(rev(&current)))
            .await
            .expect("put")
            .expect("unchanged");
        assert_eq!(
            txns.get("app")
                .await
                .expect("get")
                .expect("present")
                .value
                .state,
            state
        );
    }

    // Ids that differ only by `/` and `%` (and their encodings) are separate keys.
    let tricky = ["a/b", "a%2Fb", "a%b", "%", "/", "a", "x/../y"];
    for id in tricky {
        let created = txns
            .put(&ongoing_txn(id), None)
            .await
            .expect("create")
            .expect("absent");
        assert_eq!(txns.get(id).await.expect("get"), Some(created));
    }
    assert!(
        store
            .get("/tierlog/transactions/a%2Fb")
            .await
            .expect("raw")
            .is_some()
    );
    let listed: Vec<String> = txns
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.value.transactional_id)
        .collect();
    let mut expected: Vec<String> = tricky.iter().map(|s| (*s).to_owned()).collect();
    expected.push("app".to_owned());
    expected.sort();
    assert_eq!(listed, expected);

    // Deletes compare the revision: a stale one leaves the state alone.
    let err = txns.put(&txn_meta(""), None).await.expect_err("empty id");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(txns.get("").await.expect("empty id"), None);
    let err = txns
        .put(&txn_meta("app"), Some(-1))
        .await
        .expect_err("negative");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = txns.delete("app", -1).await.expect_err("negative");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(!txns.delete("app", rev(&created)).await.expect("stale"));
    assert!(txns.get("app").await.expect("get").is_some());
    assert!(txns.delete("app", rev(&current)).await.expect("delete"));
    assert!(!txns.delete("app", rev(&current)).await.expect("again"));
    assert_eq!(txns.get("app").await.expect("get"), None);
    for id in tricky {
        let current = txns.get(id).await.expect("get").expect("present");
        assert!(txns.delete(id, rev(&current)).await.expect("delete"));
    }
    assert!(txns.list().await.expect("list").is_empty());

    // A state stored under another id's key is corrupt, not silently renamed.
    let misplaced = TransactionRegistry::key("elsewhere");
    let value = encode_json(&misplaced, &txn_meta("app")).expect("encode");
    store.put(&misplaced, value).await.expect("put");
    let err = txns.get("elsewhere").await.expect_err("misplaced");
    assert_eq!(err.kind(), ErrorKind::Data);
    assert_eq!(
        txns.list().await.expect_err("misplaced").kind(),
        ErrorKind::Data
    );
    assert!(store.delete(&misplaced).await.expect("delete"));
}
