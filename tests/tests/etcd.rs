//! The etcd backend of the metadata store against a real etcd (Debian's `etcd-server`, started
//! per test by `tierlog_tests::etcd`): the conformance suite every backend passes, plus what
//! only a real cluster shows — big transactions and etcd's op limit, watches fed by another
//! client, lease expiry when keep-alives stop, namespaces, outages (a watch resuming across an
//! etcd restart, or ending with `Unavailable` when etcd stays down), and connecting to nothing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tierlog_metadata::conformance::{self, next_event, next_item};
use tierlog_metadata::{
    Compare, EmbeddedStore, ErrorKind, EtcdOptions, EtcdStore, MemoryStore, MetadataStore,
    MetadataStoreExt, MetadataUrl, Op, WatchEvent, open_store,
};
use tierlog_tests::etcd::{EtcdOptions as ServerOptions, EtcdServer};

async fn connect(server: &EtcdServer, prefix: &str) -> EtcdStore {
    EtcdStore::connect(&[server.endpoint()], prefix, EtcdOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_passes_against_real_etcd() {
    let Some(server) =
        EtcdServer::start_or_skip("conformance_suite_passes_against_real_etcd").unwrap()
    else {
        return;
    };
    let store = connect(&server, "/conformance").await;
    conformance::run(Arc::new(store)).await;

    // Everything it wrote lives under the namespace; nothing leaked outside it.
    let bare = connect(&server, "").await;
    let all = bare.list("").await.unwrap();
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|kv| kv.key.starts_with("/conformance/")),
        "{:?}",
        all.iter().map(|kv| &kv.key).collect::<Vec<_>>()
    );
}

/// The node, partition-state and controller registries on etcd's default limits (128 ops per
/// transaction: `create_missing` batches 150 states into three transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_registries_against_real_etcd() {
    let Some(server) = EtcdServer::start_or_skip("cluster_registries_against_real_etcd").unwrap()
    else {
        return;
    };
    let store = connect(&server, "/registries").await;
    conformance::cluster_registries(Arc::new(store)).await;
}

/// One transaction with a thousand compares and puts, then a thousand CAS deletes, on an etcd
/// that allows them; the same size on etcd's default limit is `Invalid`. Also measures
/// sequential single-put transactions per second against the embedded and memory stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_transactions_and_etcds_op_limit() {
    let Some(server) = EtcdServer::start_with_or_skip(
        "big_transactions_and_etcds_op_limit",
        ServerOptions {
            max_txn_ops: Some(2048),
            ..ServerOptions::default()
        },
    )
    .unwrap() else {
        return;
    };
    let store = connect(&server, "/big").await;
    let n = 1000;
    let keys: Vec<String> = (0..n).map(|i| format!("/offsets/g/t/{i:04}")).collect();
    let before = store.current_revision().await.unwrap();
    let started = Instant::now();
    let r = store
        .txn(
            keys.iter().map(Compare::absent).collect(),
            keys.iter()
                .map(|k| Op::put(k, Bytes::from(k.clone())))
                .collect(),
        )
        .await
        .unwrap();
    let put_time = started.elapsed();
    assert!(r.succeeded);
    assert_eq!(r.revision, before + 1);
    let listed = store.list("/offsets/").await.unwrap();
    assert_eq!(listed.len(), n);
    assert!(listed.iter().all(|kv| kv.mod_revision == r.revision));
    assert_eq!(
        listed.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        keys
    );

    // A stale compare among a thousand fails the whole thing.
    let mut compares: Vec<Compare> = listed
        .iter()
        .map(|kv| Compare::mod_revision(&kv.key, kv.mod_revision))
        .collect();
    compares[n / 2] = Compare::mod_revision(&keys[n / 2], r.revision - 1);
    let deletes: Vec<Op> = keys.iter().map(Op::delete).collect();
    let failed = store.txn(compares.clone(), deletes.clone()).await.unwrap();
    assert!(!failed.succeeded);
    assert_eq!(store.list("/offsets/").await.unwrap().len(), n);
    compares[n / 2] = Compare::mod_revision(&keys[n / 2], r.revision);
    let r2 = store.txn(compares, deletes).await.unwrap();
    assert!(r2.succeeded);
    assert_eq!(r2.revision, r.revision + 1);
    assert!(store.list("/offsets/").await.unwrap().is_empty());
    eprintln!("etcd: one txn of {n} compares + {n} puts took {put_time:?}");

    // etcd's default --max-txn-ops is 128: more ops are refused as invalid, not retried.
    let Some(default_server) = EtcdServer::start_or_skip("etcd default op limit").unwrap() else {
        return;
    };
    let limited = connect(&default_server, "/big").await;
    let ops: Vec<Op> = (0..129)
        .map(|i| Op::put(format!("/k/{i}"), Bytes::new()))
        .collect();
    let err = limited.txn(vec![], ops).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(limited.list("/k/").await.unwrap().is_empty());

    // Sequential single-put transactions per second, for the record.
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(&dir.path().join("metadata.redb")).unwrap();
    let memory = MemoryStore::new();
    let rounds = 300;
    for (name, backend) in [
        ("etcd", &store as &dyn MetadataStore),
        ("embedded", &embedded),
        ("memory", &memory),
    ] {
        let started = Instant::now();
        for i in 0..rounds {
            backend
                .put(&format!("/rate/{i}"), Bytes::from_static(b"0123456789"))
                .await
                .unwrap();
        }
        let rate = f64::from(rounds) / started.elapsed().as_secs_f64();
        eprintln!("{name}: {rate:.0} sequential single-put txns/s");
    }
}

/// A watch on one client sees another client's puts, deletes and transactions, exactly and
/// in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_sees_another_clients_writes_in_order() {
    let Some(server) =
        EtcdServer::start_or_skip("watch_sees_another_clients_writes_in_order").unwrap()
    else {
        return;
    };
    let watcher = connect(&server, "/app").await;
    let writer = connect(&server, "/app").await;
    let mut watch = watcher.watch("/nodes/", 0).await.unwrap();

    let mut expected = Vec::new();
    for i in 0..20 {
        let key = format!("/nodes/{}", i % 5);
        let rev = writer.put(&key, Bytes::from(i.to_string())).await.unwrap();
        expected.push((key, Some(i.to_string()), rev));
        if i % 7 == 6 {
            let victim = format!("/nodes/{}", (i + 1) % 5);
            if writer.delete(&victim).await.unwrap() {
                let rev = writer.current_revision().await.unwrap();
                expected.push((victim, None, rev));
            }
        }
    }
    writer.put("/elsewhere", Bytes::new()).await.unwrap();
    let r = writer
        .txn(
            vec![],
            vec![Op::delete_prefix("/nodes/"), Op::put("/other/marker", "x")],
        )
        .await
        .unwrap();
    assert!(watcher.list("/nodes/").await.unwrap().is_empty());
    let sentinel = writer.put("/nodes/last", Bytes::from("x")).await.unwrap();

    for (key, value, rev) in &expected {
        let event = next_event(&mut watch).await;
        assert_eq!(event.key(), key);
        assert_eq!(event.revision(), *rev, "{event:?}");
        match (value, &event) {
            (Some(v), WatchEvent::Put(kv)) => assert_eq!(kv.value, v.as_bytes()),
            (None, WatchEvent::Delete { .. }) => {}
            _ => panic!("expected {key} {value:?}, got {event:?}"),
        }
    }
    // The prefix delete: one delete per remaining key, all at its revision, then the sentinel.
    let mut deleted = 0;
    loop {
        let event = next_event(&mut watch).await;
        if let WatchEvent::Put(kv) = &event {
            assert_eq!(
                (kv.key.as_str(), kv.mod_revision),
                ("/nodes/last", sentinel)
            );
            break;
        }
        assert_eq!(event.revision(), r.revision, "{event:?}");
        deleted += 1;
    }
    assert!(deleted > 0);
}

/// A lease whose keep-alives stop lapses after its TTL: the other client's watch sees its keys
/// deleted (no fixed sleep: the test waits for the event), and the lease is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_expires_when_keep_alives_stop() {
    let Some(server) = EtcdServer::start_or_skip("lease_expires_when_keep_alives_stop").unwrap()
    else {
        return;
    };
    let owner = Arc::new(connect(&server, "/cluster").await);
    let observer = connect(&server, "/cluster").await;
    let ttl = Duration::from_secs(2);
    let lease = owner.grant_lease(ttl).await.unwrap();
    owner
        .put_with_lease("/nodes/1", Bytes::from("10.0.0.1:9092"), lease)
        .await
        .unwrap();
    let mut watch = observer.watch("/nodes/", 0).await.unwrap();

    // Keep it alive for three TTLs: it must survive that.
    let keeper = {
        let owner = Arc::clone(&owner);
        tokio::spawn(async move {
            let mut last = Instant::now();
            for _ in 0..9 {
                tokio::time::sleep(ttl / 3).await;
                owner.keep_alive(lease).await.unwrap();
                last = Instant::now();
            }
            last
        })
    };
    let last_keep_alive = keeper.await.unwrap();
    assert!(observer.get("/nodes/1").await.unwrap().is_some());

    // Keep-alives have stopped: the deletion arrives through the watch.
    let event = next_event(&mut watch).await;
    let lapse = last_keep_alive.elapsed();
    assert!(
        matches!(&event, WatchEvent::Delete { key, .. } if key == "/nodes/1"),
        "{event:?}"
    );
    assert!(lapse >= ttl - Duration::from_millis(200), "{lapse:?}");
    eprintln!("lease of {ttl:?} lapsed {lapse:?} after the last keep-alive");
    assert!(observer.get("/nodes/1").await.unwrap().is_none());
    let err = owner.keep_alive(lease).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Stores on one etcd with different prefixes do not see each other; `open_store` builds
/// them from URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_store_namespaces_keys_by_url_prefix() {
    let Some(server) =
        EtcdServer::start_or_skip("open_store_namespaces_keys_by_url_prefix").unwrap()
    else {
        return;
    };
    let unused = std::path::Path::new("unused");
    let a = open_store(&server.url("/a").parse().unwrap(), unused)
        .await
        .unwrap();
    let b = open_store(&server.url("/b").parse().unwrap(), unused)
        .await
        .unwrap();
    a.put("/tierlog/probe", Bytes::from("A")).await.unwrap();
    b.put("/tierlog/probe", Bytes::from("B")).await.unwrap();
    assert_eq!(a.get("/tierlog/probe").await.unwrap().unwrap().value, "A");
    assert_eq!(b.get("/tierlog/probe").await.unwrap().unwrap().value, "B");
    assert_eq!(a.list("").await.unwrap().len(), 1);
    let raw = connect(&server, "").await;
    let keys: Vec<String> = raw
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["/a/tierlog/probe", "/b/tierlog/probe"]);
    // The registries work on it unchanged, each namespace with its own cluster.
    let id = tierlog_metadata::cluster_id(a.as_ref()).await.unwrap();
    assert_eq!(tierlog_metadata::cluster_id(a.as_ref()).await.unwrap(), id);
    assert_ne!(tierlog_metadata::cluster_id(b.as_ref()).await.unwrap(), id);
}

/// etcd killed and restarted on the same data: the watch resumes from the revision after the
/// last one it delivered, losing and repeating nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_resumes_across_an_etcd_restart() {
    let Some(mut server) =
        EtcdServer::start_or_skip("watch_resumes_across_an_etcd_restart").unwrap()
    else {
        return;
    };
    let store = connect(&server, "/r").await;
    let mut watch = store.watch("/k/", 0).await.unwrap();
    let r1 = store.put("/k/1", Bytes::from("1")).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), r1);

    server.kill().unwrap();
    // While etcd is down, requests fail as Unavailable (bounded by the request timeout).
    let down = EtcdStore::connect(
        &[server.endpoint()],
        "/r",
        EtcdOptions::default().with_connect_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert_eq!(down.kind(), ErrorKind::Unavailable, "{down}");
    server.restart().unwrap();

    // Another client writes right after the restart; the watch sees it once, in order.
    let writer = connect(&server, "/r").await;
    let r2 = writer.put("/k/2", Bytes::from("2")).await.unwrap();
    let r3 = writer.put("/k/3", Bytes::from("3")).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), r2);
    assert_eq!(next_event(&mut watch).await.revision(), r3);
    // The original store's client reconnects too.
    let r4 = store.put("/k/4", Bytes::from("4")).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), r4);
    assert_eq!(r4, r1 + 3);
}

/// etcd killed and not restarted: after the reconnect window the watch yields `Unavailable`
/// and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_ends_unavailable_when_etcd_stays_down() {
    let Some(mut server) =
        EtcdServer::start_or_skip("watch_ends_unavailable_when_etcd_stays_down").unwrap()
    else {
        return;
    };
    let window = Duration::from_secs(2);
    let store = EtcdStore::connect(
        &[server.endpoint()],
        "/d",
        EtcdOptions::default()
            .with_request_timeout(Duration::from_secs(1))
            .with_watch_reconnect_timeout(window),
    )
    .await
    .unwrap();
    let mut watch = store.watch("/", 0).await.unwrap();
    server.kill().unwrap();
    let started = Instant::now();
    let item = next_item(&mut watch, Duration::from_secs(30))
        .await
        .unwrap();
    let err = item.expect("an error, not the end").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < window + Duration::from_secs(5));
    let end = next_item(&mut watch, Duration::from_secs(5)).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    // Plain requests fail the same way, within the request timeout.
    let started = Instant::now();
    let err = store.get("/x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// Nothing listening: `open_store` fails within the connect timeout with `Unavailable`. Needs
/// no etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_store_with_unreachable_etcd_fails_within_the_connect_timeout() {
    let port = tierlog_tests::node::free_port().unwrap();
    let url: MetadataUrl = format!("etcd://127.0.0.1:{port}/x").parse().unwrap();
    let started = Instant::now();
    let err = open_store(&url, std::path::Path::new("unused"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let limit = EtcdOptions::default().connect_timeout;
    assert!(took < limit + Duration::from_secs(1), "{took:?}");
    eprintln!("open_store on a closed port failed after {took:?}: {err}");

    // A shorter timeout is honoured, also for an address that never answers (TEST-NET-1,
    // reserved: packets go nowhere).
    for endpoint in [format!("127.0.0.1:{port}"), "192.0.2.1:2379".to_owned()] {
        let started = Instant::now();
        let err = EtcdStore::connect(
            std::slice::from_ref(&endpoint),
            "",
            EtcdOptions::default().with_connect_timeout(Duration::from_millis(800)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{endpoint}: {err}");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1800), "{endpoint}: {took:?}");
    }
}
