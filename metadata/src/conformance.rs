//! The conformance suite every [`MetadataStore`] backend must pass.
//!
//! One async function, run by each backend's tests against a fresh, empty store; the etcd
//! backend will run it too. It checks the trait contract, not any backend's internals.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::ErrorKind;
use crate::store::{Compare, KeyValue, MetadataStore, MetadataStoreExt, Op, Precondition};

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

/// Runs every check against `store`, which must be empty.
pub(crate) async fn run(store: Arc<dyn MetadataStore>) {
    empty(store.as_ref()).await;
    put_get(store.as_ref()).await;
    list_prefix(store.as_ref()).await;
    preconditions(store.as_ref()).await;
    atomicity(store.as_ref()).await;
    delete_prefix(store.as_ref()).await;
    invalid_txns(store.as_ref()).await;
    concurrent_put_if(Arc::clone(&store)).await;
    concurrent_cas_increments(store).await;
}

async fn empty(store: &dyn MetadataStore) {
    assert_eq!(store.current_revision().await.expect("rev"), 0);
    assert_eq!(store.get("/nothing").await.expect("get"), None);
    assert!(store.list("").await.expect("list").is_empty());
    // A transaction that changes nothing does not bump the revision.
    let r = store.txn(vec![], vec![]).await.expect("empty txn");
    assert!(r.succeeded);
    assert_eq!(r.revision, 0);
    assert!(!store.delete("/nothing").await.expect("delete absent"));
    let r = store
        .txn(
            vec![],
            vec![Op::delete("/nothing"), Op::delete_prefix("/no/")],
        )
        .await
        .expect("no-op deletes");
    assert!(r.succeeded);
    assert_eq!(store.current_revision().await.expect("rev"), 0);
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
