//! Authorization of authenticated principals, end to end: SASL users and certificate
//! principals (mapped by `ssl.principal.mapping.rules`) under ACLs that Kafka's own
//! `kafka-acls` adds and removes while librdkafka clients produce, consume in a group and
//! create topics; anonymous clients see nothing once authentication is on; and a principal
//! without ACLs is refused by every protected API with Kafka's error code.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message};
use tierlog_tests::clients::admin_options;
use tierlog_tests::kafka::{require_kafka, run_tool};
use tierlog_tests::tls::Pki;
use tierlog_tests::wire::{Conn, topic_name};
use tierlog_tests::{NodeOptions, TestNode};

const ADMIN_PASSWORD: &str = "admin-secret";
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;

/// A node with SASL_PLAINTEXT and SSL listeners, ACLs closed by default (authentication is
/// on), `admin` a super user, and certificate subjects mapped to their lower-cased CN.
struct Secured {
    node: TestNode,
    pki: Pki,
    dir: tempfile::TempDir,
}

impl Secured {
    fn start() -> Result<Secured> {
        let pki = Pki::new("authorization CA")?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("admin-password"), ADMIN_PASSWORD)?;
        let node = TestNode::start(
            NodeOptions::default()
                .listener("SASL_PLAINTEXT", "SASL_PLAINTEXT")
                .listener("SSL", "SSL")
                .args(pki.node_args())
                .args(["--ssl-client-auth", "requested"])
                .args([
                    "--ssl-principal-mapping-rules",
                    "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
                ])
                .args(["--super-users", "User:admin"])
                .args(["--sasl-bootstrap-user", "admin"])
                .args([
                    "--sasl-bootstrap-password-file",
                    dir.path().join("admin-password").to_str().unwrap(),
                ]),
        )?;
        let s = Secured { node, pki, dir };
        std::fs::write(s.command_config(), s.tool_props("admin", ADMIN_PASSWORD))?;
        Ok(s)
    }

    fn sasl(&self) -> String {
        self.node.listener("SASL_PLAINTEXT")
    }

    /// librdkafka properties for `user` on the SASL listener.
    fn sasl_props(&self, user: &str, password: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.sasl())
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", password);
        c
    }

    /// librdkafka properties for a client certificate with common name `cn`.
    fn cert_props(&self, cn: &str) -> Result<ClientConfig> {
        let (cert, key) = self.pki.client(cn, "eng")?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.node.listener("SSL"))
            .set("security.protocol", "SSL")
            .set("ssl.ca.location", self.pki.ca_file().display().to_string())
            .set("ssl.certificate.location", cert.display().to_string())
            .set("ssl.key.location", key.display().to_string());
        Ok(c)
    }

    fn tool_props(&self, user: &str, password: &str) -> String {
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"{user}\" password=\"{password}\";\n"
        )
    }

    fn command_config(&self) -> std::path::PathBuf {
        self.dir.path().join("admin.properties")
    }

    /// Runs a Kafka tool as `admin` over SASL.
    fn tool(&self, class: &str, args: &[&str]) -> Result<String> {
        let sasl = self.sasl();
        let config = self.command_config();
        let config = config.to_str().unwrap();
        let mut all = vec![
            "--bootstrap-server",
            sasl.as_str(),
            "--command-config",
            config,
        ];
        all.extend_from_slice(args);
        let out = run_tool(class, &all, None, TOOL_TIMEOUT)?
            .ok()
            .with_context(|| format!("{class} {}", args.join(" ")))?;
        Ok(out.stdout)
    }

    fn acls(&self, args: &[&str]) -> Result<String> {
        self.tool("org.apache.kafka.tools.AclCommand", args)
    }

    fn add_user(&self, user: &str, password: &str) -> Result<()> {
        let config = format!("SCRAM-SHA-512=[iterations=4096,password={password}]");
        self.tool(
            "kafka.admin.ConfigCommand",
            &[
                "--alter",
                "--add-config",
                &config,
                "--entity-type",
                "users",
                "--entity-name",
                user,
            ],
        )?;
        Ok(())
    }
}

/// Produces one record as the client `cfg` describes; the error text if refused.
async fn produce_one(cfg: &ClientConfig, topic: &str) -> Result<(), String> {
    let mut cfg = cfg.clone();
    cfg.set("message.timeout.ms", "10000").set("acks", "all");
    let p: FutureProducer = cfg.create().map_err(|e| e.to_string())?;
    let r = p
        .send(
            FutureRecord::to(topic).partition(0).key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string());
    let _ = p.flush(Duration::from_secs(1));
    r
}

/// Polls until `probe` (an async client action) succeeds: ACL changes reach every node within
/// a second, and a client may cache a refusal briefly.
async fn eventually<F, Fut>(what: &str, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match probe().await {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => {
                anyhow::bail!("{what}: still failing after 30 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn create_topic(cfg: &ClientConfig, name: &str) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = cfg.create().map_err(|e| e.to_string())?;
    let results = admin
        .create_topics(
            [&NewTopic::new(name, 1, TopicReplication::Fixed(1))],
            &admin_options(),
        )
        .await
        .map_err(|e| e.to_string())?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, code))) => Err(format!("{code:?}")),
        None => Err("no result".to_owned()),
    }
}

fn topics_visible(cfg: &ClientConfig) -> Result<Vec<String>> {
    let p: rdkafka::producer::BaseProducer = cfg.create()?;
    let md = p.client().fetch_metadata(None, Duration::from_secs(10))?;
    Ok(md.topics().iter().map(|t| t.name().to_owned()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_govern_sasl_users_and_certificate_principals() -> Result<()> {
    if !require_kafka("acls_govern_sasl_users_and_certificate_principals")? {
        return Ok(());
    }
    let s = Secured::start()?;
    let admin = s.sasl_props("admin", ADMIN_PASSWORD);
    create_topic(&admin, "orders")
        .await
        .map_err(|e| anyhow::anyhow!("admin creating a topic: {e}"))?;
    s.add_user("alice", "alice-secret")?;
    let alice = s.sasl_props("alice", "alice-secret");

    // No ACL: alice may not write, and anonymous clients see no topic at all.
    let refused = produce_one(&alice, "orders").await;
    ensure!(
        refused.as_ref().is_err_and(|e| e.contains("Authorization")),
        "alice wrote without an ACL: {refused:?}"
    );
    let mut anonymous = ClientConfig::new();
    anonymous.set("bootstrap.servers", s.node.bootstrap());
    ensure!(
        !topics_visible(&anonymous)?.contains(&"orders".to_owned()),
        "an anonymous client sees the topic"
    );
    ensure!(
        create_topic(&anonymous, "anon-topic").await.is_err(),
        "an anonymous client created a topic"
    );

    // kafka-acls grants alice WRITE: her produce succeeds.
    s.acls(&[
        "--add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Write",
        "--topic",
        "orders",
    ])?;
    eventually("alice producing after the ACL", || {
        produce_one(&alice, "orders")
    })
    .await?;

    // A certificate principal: CN=bob,OU=eng,O=tierlog maps to User:bob. A group consumer
    // needs READ on the topic and on its group.
    let bob = s.cert_props("bob")?;
    s.acls(&[
        "--add",
        "--allow-principal",
        "User:bob",
        "--operation",
        "Read",
        "--topic",
        "orders",
        "--group",
        "bob-group",
    ])?;
    let mut bob_consumer = bob.clone();
    bob_consumer
        .set("group.id", "bob-group")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = bob_consumer.create()?;
    consumer.subscribe(&["orders"])?;
    let got = tokio::task::spawn_blocking(move || -> Result<usize> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        let mut errors = Vec::new();
        while std::time::Instant::now() < deadline && n == 0 {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    ensure!(m.payload() == Some(b"v".as_slice()));
                    n += 1;
                }
                Some(Err(e)) => errors.push(e.to_string()),
                None => {}
            }
        }
        ensure!(n > 0, "bob read nothing; errors: {errors:?}");
        Ok(n)
    })
    .await??;
    ensure!(got > 0);
    // Bob may read but not write.
    let refused = produce_one(&bob, "orders").await;
    ensure!(refused.is_err(), "bob wrote with only READ");

    // A prefixed CREATE lets alice create topics under her prefix, and only there.
    ensure!(
        create_topic(&alice, "alice-1").await.is_err(),
        "alice created a topic without CREATE"
    );
    s.acls(&[
        "--add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Create",
        "--topic",
        "alice-",
        "--resource-pattern-type",
        "prefixed",
    ])?;
    eventually("alice creating under her prefix", || {
        create_topic(&alice, "alice-1")
    })
    .await?;
    ensure!(
        create_topic(&alice, "other-1").await.is_err(),
        "alice created a topic outside her prefix"
    );

    // Removing the WRITE ACL takes effect again.
    s.acls(&[
        "--remove",
        "--force",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Write",
        "--topic",
        "orders",
    ])?;
    eventually("alice refused after the ACL is removed", || async {
        match produce_one(&alice, "orders").await {
            Ok(()) => Err("still allowed".to_owned()),
            Err(_) => Ok(()),
        }
    })
    .await?;
    let denials = s
        .node
        .metrics()?
        .counter("tierlog_authorization_denials_total");
    ensure!(denials > 0.0, "no denial counted");
    Ok(())
}

/// `mallory`, authenticated but granted nothing, sends one request of every protected API
/// and gets Kafka's authorization error for each.
#[test]
fn every_protected_api_refuses_a_principal_without_acls() -> Result<()> {
    if !require_kafka("every_protected_api_refuses_a_principal_without_acls")? {
        return Ok(());
    }
    let s = Secured::start()?;
    s.add_user("mallory", "mallory-secret")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(create_topic(
        &s.sasl_props("admin", ADMIN_PASSWORD),
        "secret",
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(rt);
    let mut c = Conn::connect(s.sasl().parse()?)?;
    let auth = c.sasl_authenticate("PLAIN", Bytes::from_static(b"\0mallory\0mallory-secret"))?;
    ensure!(auth.error_code == 0, "mallory could not log in: {auth:?}");
    let mut codes: Vec<(&str, i16, i16)> = Vec::new();

    let md = c.metadata_topic("secret", false)?;
    codes.push(("Metadata", md.error_code, TOPIC_DENIED));
    let batch = tierlog_tests::wire::encode_batch(
        &[(Some(b"k".as_slice()), Some(b"v".as_slice()))],
        kafka_protocol::records::Compression::None,
        0,
    )?;
    let p = c.produce("secret", 0, batch, -1)?;
    codes.push(("Produce", p.error_code, TOPIC_DENIED));
    let f = c.fetch("secret", 0, 0, 0, 1)?;
    codes.push(("Fetch", f.error_code, TOPIC_DENIED));

    let r: ListOffsetsResponse = c.request(
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic_name("secret"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]),
        7,
    )?;
    codes.push((
        "ListOffsets",
        r.topics[0].partitions[0].error_code,
        TOPIC_DENIED,
    ));
    let r: CreateTopicsResponse = c.request(
        &CreateTopicsRequest::default()
            .with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(topic_name("mallory-topic"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ])
            .with_timeout_ms(5000),
        5,
    )?;
    codes.push(("CreateTopics", r.topics[0].error_code, TOPIC_DENIED));
    let r: DeleteTopicsResponse = c.request(
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name("secret")])
            .with_timeout_ms(5000),
        5,
    )?;
    codes.push(("DeleteTopics", r.responses[0].error_code, TOPIC_DENIED));
    let r: CreatePartitionsResponse = c.request(
        &CreatePartitionsRequest::default()
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name("secret"))
                    .with_count(3),
            ])
            .with_timeout_ms(5000),
        3,
    )?;
    codes.push(("CreatePartitions", r.results[0].error_code, TOPIC_DENIED));
    let r: DescribeConfigsResponse = c.request(
        &DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("secret")),
        ]),
        4,
    )?;
    codes.push(("DescribeConfigs", r.results[0].error_code, TOPIC_DENIED));
    let r: IncrementalAlterConfigsResponse = c.request(
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("secret"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_static_str("1000"))),
                ]),
        ]),
        1,
    )?;
    codes.push((
        "IncrementalAlterConfigs",
        r.responses[0].error_code,
        TOPIC_DENIED,
    ));
    let r: DeleteRecordsResponse = c.request(
        &DeleteRecordsRequest::default()
            .with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(topic_name("secret"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(0),
                    ]),
            ])
            .with_timeout_ms(5000),
        2,
    )?;
    codes.push((
        "DeleteRecords",
        r.topics[0].partitions[0].error_code,
        TOPIC_DENIED,
    ));

    let r: FindCoordinatorResponse = c.request(
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        4,
    )?;
    codes.push((
        "FindCoordinator",
        r.coordinators[0].error_code,
        GROUP_DENIED,
    ));
    let r: JoinGroupResponse = c.request(
        &JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_static_str(""))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range")),
            ]),
        5,
    )?;
    codes.push(("JoinGroup", r.error_code, GROUP_DENIED));
    let r: OffsetFetchResponse = c.request(
        &OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
        5,
    )?;
    codes.push(("OffsetFetch", r.error_code, GROUP_DENIED));
    let r: DescribeGroupsResponse = c.request(
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("g"))]),
        5,
    )?;
    codes.push(("DescribeGroups", r.groups[0].error_code, GROUP_DENIED));
    let r: DeleteGroupsResponse = c.request(
        &DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]),
        2,
    )?;
    codes.push(("DeleteGroups", r.results[0].error_code, GROUP_DENIED));

    let r: InitProducerIdResponse = c.request(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("t"))))
            .with_transaction_timeout_ms(10_000),
        4,
    )?;
    codes.push(("InitProducerId", r.error_code, TXN_DENIED));

    let r: CreateAclsResponse = c.request(
        &CreateAclsRequest::default().with_creations(vec![
            create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("secret"))
                .with_resource_pattern_type(3)
                .with_principal(StrBytes::from_static_str("User:mallory"))
                .with_host(StrBytes::from_static_str("*"))
                .with_operation(2)
                .with_permission_type(3),
        ]),
        3,
    )?;
    codes.push(("CreateAcls", r.results[0].error_code, CLUSTER_DENIED));
    let r: DescribeAclsResponse = c.request(
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
        3,
    )?;
    codes.push(("DescribeAcls", r.error_code, CLUSTER_DENIED));
    let r: DescribeClientQuotasResponse = c.request(&DescribeClientQuotasRequest::default(), 1)?;
    codes.push(("DescribeClientQuotas", r.error_code, CLUSTER_DENIED));
    let r: DescribeUserScramCredentialsResponse =
        c.request(&DescribeUserScramCredentialsRequest::default(), 0)?;
    codes.push(("DescribeUserScramCredentials", r.error_code, CLUSTER_DENIED));
    let r: AlterUserScramCredentialsResponse = c.request(
        &AlterUserScramCredentialsRequest::default().with_deletions(vec![
            alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("admin"))
                .with_mechanism(2),
        ]),
        0,
    )?;
    codes.push((
        "AlterUserScramCredentials",
        r.results[0].error_code,
        CLUSTER_DENIED,
    ));

    let wrong: Vec<_> = codes.iter().filter(|(_, got, want)| got != want).collect();
    ensure!(
        wrong.is_empty(),
        "APIs that did not refuse mallory with Kafka's code (api, got, expected): {wrong:?}"
    );
    // Nothing was changed: the topic is intact and admin can still log in.
    let admin = s.sasl_props("admin", ADMIN_PASSWORD);
    ensure!(topics_visible(&admin)?.contains(&"secret".to_owned()));
    Ok(())
}
