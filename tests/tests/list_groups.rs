//! ListGroups v5 (KIP-848): a classic group (librdkafka's default protocol) and a
//! next-generation one (`group.protocol=consumer`) on one node, listed with their group types
//! and filtered by type and state as Kafka's group coordinator filters them (types and states
//! case-insensitively; an unknown type matches nothing; both filters must pass), and the same
//! listings taken from Apache Kafka.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use tierlog_tests::TestNode;
use tierlog_tests::clients::{self, create_topic};
use tierlog_tests::groups::{node_options, poll_until, subscribed};
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::Conn;

const TOPIC: &str = "list-groups";
const CLASSIC: &str = "lg-classic";
const CONSUMER: &str = "lg-consumer";
/// Bound for both groups to settle (KIP-848 reconciliation takes a heartbeat or two).
const SETTLE: Duration = Duration::from_secs(60);

/// The filtered listings the tests look at, by a label naming the filter.
type Listings = BTreeMap<&'static str, Vec<String>>;

/// Group id → (protocol type, state, group type).
type Rows = BTreeMap<String, (String, String, String)>;

/// The rows of a ListGroups answer at `version`.
fn list(conn: &mut Conn, version: i16, states: &[&str], types: &[&str]) -> Rows {
    let strs = |v: &[&str]| -> Vec<StrBytes> {
        v.iter()
            .map(|s| StrBytes::from_string((*s).to_owned()))
            .collect()
    };
    let request = ListGroupsRequest::default()
        .with_states_filter(strs(states))
        .with_types_filter(strs(types));
    let response = conn.request(&request, version).unwrap();
    assert_eq!(response.error_code, 0);
    response
        .groups
        .into_iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                (
                    g.protocol_type.to_string(),
                    g.group_state.to_string(),
                    g.group_type.to_string(),
                ),
            )
        })
        .collect()
}

/// The group ids of a ListGroups v5 answer with these filters.
fn ids(conn: &mut Conn, states: &[&str], types: &[&str]) -> Vec<String> {
    list(conn, 5, states, types).into_keys().collect()
}

/// On `broker`: a classic group and a next-generation group, each with one member owning both
/// partitions of a topic; once both are Stable, the full v5 and v4 listings and the ids that
/// each filter lets through.
fn scenario(broker: &dyn Broker) -> (Rows, Rows, Listings) {
    let bootstrap = broker.bootstrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_topic(&bootstrap, TOPIC, 2, &[]))
        .unwrap();
    let classic = subscribed(&bootstrap, CLASSIC, TOPIC, &[]).unwrap();
    let next = clients::consumer(
        &bootstrap,
        &[
            ("group.id", CONSUMER),
            ("group.protocol", "consumer"),
            ("auto.offset.reset", "earliest"),
        ],
    )
    .unwrap();
    next.subscribe(&[TOPIC]).unwrap();
    poll_until(
        &[&classic, &next],
        TOPIC,
        SETTLE,
        "each group's only member owning both partitions",
        |o| o.assignments.iter().all(|a| a.len() == 2),
    )
    .unwrap();

    let mut conn = broker.connect().unwrap();
    wait_for(
        "both groups listed as Stable",
        SETTLE,
        Duration::from_millis(100),
        || {
            let all = list(&mut conn, 5, &[], &[]);
            let stable = |id: &str| all.get(id).is_some_and(|(_, state, _)| state == "Stable");
            Ok(if stable(CLASSIC) && stable(CONSUMER) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{all:?}"))
            })
        },
    )
    .unwrap();
    let v5 = list(&mut conn, 5, &[], &[]);
    let v4 = list(&mut conn, 4, &["Stable"], &[]);
    let filters: [(&'static str, &[&str], &[&str]); 8] = [
        ("type consumer", &[], &["consumer"]),
        ("type CLASSIC", &[], &["CLASSIC"]),
        ("types Classic+Consumer", &[], &["Classic", "Consumer"]),
        ("type share", &[], &["share"]),
        ("unknown type", &[], &["no-such-type"]),
        ("state stable, type consumer", &["stable"], &["consumer"]),
        ("state STABLE", &[" STABLE "], &[]),
        ("state Empty, type classic", &["Empty"], &["classic"]),
    ];
    let listings = filters
        .iter()
        .map(|(label, states, types)| (*label, ids(&mut conn, states, types)))
        .collect();
    drop((classic, next));
    (v5, v4, listings)
}

fn tierlog_node() -> TestNode {
    let mut opts = node_options();
    opts.extra_args.extend([
        "--group-consumer-heartbeat-interval".to_owned(),
        "1s".to_owned(),
    ]);
    TestNode::start(opts).unwrap()
}

#[test]
fn list_groups_v5_reports_and_filters_group_types() {
    let node = tierlog_node();
    let (v5, v4, listings) = scenario(&node);
    let row = |state: &str, kind: &str| ("consumer".to_owned(), state.to_owned(), kind.to_owned());
    assert_eq!(
        v5,
        BTreeMap::from([
            (CLASSIC.to_owned(), row("Stable", "classic")),
            (CONSUMER.to_owned(), row("Stable", "consumer")),
        ])
    );
    // v4 has states but no types: the type is not on the wire.
    assert_eq!(
        v4,
        BTreeMap::from([
            (CLASSIC.to_owned(), row("Stable", "")),
            (CONSUMER.to_owned(), row("Stable", "")),
        ])
    );
    let classic = || vec![CLASSIC.to_owned()];
    let consumer = || vec![CONSUMER.to_owned()];
    let both = || vec![CLASSIC.to_owned(), CONSUMER.to_owned()];
    // Types case-insensitive, several a union, unknown ones match nothing; states trimmed and
    // case-insensitive; both filters must pass.
    let want: Listings = BTreeMap::from([
        ("type consumer", consumer()),
        ("type CLASSIC", classic()),
        ("types Classic+Consumer", both()),
        ("type share", vec![]),
        ("unknown type", vec![]),
        ("state stable, type consumer", consumer()),
        ("state STABLE", both()),
        ("state Empty, type classic", vec![]),
    ]);
    assert_eq!(listings, want);
}

#[test]
fn list_groups_v5_answers_as_apache_kafka_does() {
    let Some(kafka) =
        KafkaServer::start_or_skip("list_groups_v5_answers_as_apache_kafka_does").unwrap()
    else {
        return;
    };
    let from_kafka = scenario(&kafka);
    drop(kafka);
    let node = tierlog_node();
    assert_eq!(scenario(&node), from_kafka);
}
