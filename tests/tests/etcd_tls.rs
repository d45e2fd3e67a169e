//! The etcd metadata store over TLS: a real etcd serving `https://` on its client port and
//! requiring client certificates (`--client-cert-auth`), a node reaching it with
//! `--etcd-ca-file/--etcd-cert-file/--etcd-key-file` and serving Kafka clients, and the
//! refusals: no client certificate, one from another CA, and plain text.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use tierlog_metadata::{EtcdOptions, EtcdStore, EtcdTls, MetadataStore};
use tierlog_tests::clients::{CLIENT_TIMEOUT, consume_exactly, consumer, create_topic, producer};
use tierlog_tests::etcd::{EtcdOptions as ServerOptions, EtcdServer, EtcdServerTls};
use tierlog_tests::tls::Pki;
use tierlog_tests::{NodeOptions, TestNode};

const PREFIX: &str = "/tls";

/// A direct store on `server` with `tls`, failing fast.
async fn store(server: &EtcdServer, tls: EtcdTls) -> tierlog_metadata::Result<EtcdStore> {
    EtcdStore::connect(
        &[server.endpoint()],
        PREFIX,
        EtcdOptions::default()
            .with_connect_timeout(Duration::from_secs(3))
            .with_tls(tls),
    )
    .await
}

fn etcd_args(ca: &Path, cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--etcd-ca-file".into(),
        ca.display().to_string(),
        "--etcd-cert-file".into(),
        cert.display().to_string(),
        "--etcd-key-file".into(),
        key.display().to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_metadata_in_etcd_over_mutual_tls() -> Result<()> {
    let test = "a_node_keeps_its_metadata_in_etcd_over_mutual_tls";
    let pki = Pki::new("etcd CA")?;
    let options = ServerOptions {
        tls: Some(EtcdServerTls::mutual(
            &pki.server_cert(),
            &pki.server_key(),
            &pki.ca_file(),
        )),
        ..ServerOptions::default()
    };
    let Some(server) = EtcdServer::start_with_or_skip(test, options)? else {
        return Ok(());
    };
    let (cert, key) = pki.client("tierlog-node", "nodes")?;
    let node = TestNode::start(
        NodeOptions {
            metadata: Some(server.url(PREFIX)),
            ..NodeOptions::default()
        }
        .args(etcd_args(&pki.ca_file(), &cert, &key)),
    )?;

    // Kafka clients work: the topic, its partition state and the offsets live in etcd.
    let topic = "over-etcd-tls";
    create_topic(&node.bootstrap(), topic, 1, &[]).await?;
    let p = producer(&node.bootstrap(), &[])?;
    for i in 0..100 {
        p.send(
            FutureRecord::to(topic)
                .partition(0)
                .key(&format!("k{i}"))
                .payload(&format!("v{i}")),
            CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce {i}: {e}"))?;
    }
    let c: BaseConsumer = consumer(&node.bootstrap(), &[])?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    c.assign(&tpl)?;
    let got = consume_exactly(&c, 100, Duration::from_secs(30))?;
    for (i, m) in got.iter().enumerate() {
        ensure!(
            m.payload() == Some(format!("v{i}").as_bytes()),
            "record {i}"
        );
    }

    // The same TLS settings from the test see the node's keys under the prefix.
    let direct = store(
        &server,
        EtcdTls::new(pki.ca_file()).with_client_cert(&cert, &key),
    )
    .await
    .context("a store with the node's certificate")?;
    let keys = direct.list("/").await?;
    ensure!(
        keys.iter().any(|kv| kv.key.contains(topic)),
        "no key of topic {topic} in etcd: {:?}",
        keys.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>()
    );

    // Refused: no client certificate, a certificate of another CA, a server certificate
    // from a CA not trusted, and plain text.
    ensure!(
        store(&server, EtcdTls::new(pki.ca_file())).await.is_err(),
        "etcd let a client without a certificate in"
    );
    let other = Pki::new("another CA")?;
    let (stranger_cert, stranger_key) = other.client("stranger", "nobody")?;
    ensure!(
        store(
            &server,
            EtcdTls::new(pki.ca_file()).with_client_cert(&stranger_cert, &stranger_key)
        )
        .await
        .is_err(),
        "etcd let a certificate of another CA in"
    );
    ensure!(
        store(
            &server,
            EtcdTls::new(other.ca_file()).with_client_cert(&cert, &key)
        )
        .await
        .is_err(),
        "the client trusted an etcd certificate of a CA it was not given"
    );
    ensure!(
        store(&server, EtcdTls::default()).await.is_err(),
        "plain text reached a TLS etcd"
    );

    // A node without a client certificate does not start.
    let refused = TestNode::start(
        NodeOptions {
            metadata: Some(server.url(PREFIX)),
            ..NodeOptions::default()
        }
        .args(["--etcd-ca-file", pki.ca_file().to_str().unwrap()]),
    );
    let err = refused
        .err()
        .map(|e| format!("{e:#}"))
        .context("a node without a client certificate started on a --client-cert-auth etcd")?;
    ensure!(
        err.contains("connect to etcd"),
        "the node failed for another reason: {err}"
    );
    eprintln!("{} keys in etcd; the refused node said:\n{err}", keys.len());
    Ok(())
}

#[test]
fn a_client_certificate_without_its_key_or_a_ca_is_refused_at_start() -> Result<()> {
    let pki = Pki::new("etcd CA")?;
    let (cert, _key) = pki.client("tierlog-node", "nodes")?;
    for args in [
        vec!["--etcd-cert-file", cert.to_str().unwrap()],
        vec![
            "--etcd-ca-file",
            pki.ca_file().to_str().unwrap(),
            "--etcd-cert-file",
            cert.to_str().unwrap(),
        ],
    ] {
        let err = TestNode::start(NodeOptions::default().args(args.iter().copied()))
            .err()
            .map(|e| format!("{e:#}"));
        ensure!(
            err.as_deref().is_some_and(|e| e.contains("etcd")),
            "{args:?}: {err:?}"
        );
    }
    Ok(())
}
