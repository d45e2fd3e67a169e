//! Several topics created by one CreateTopics request and written at once keep what was
//! written. (The node's cluster-state loop once applied a topic list read before such a
//! request and removed the topics it had just created here — with their data — before
//! bringing them back empty.)
#![allow(clippy::unwrap_used)]

use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::records::Compression;
use tierlog_tests::TestNode;
use tierlog_tests::wire::{Conn, encode_batch, topic_name};

const ROUNDS: usize = 5;
const TOPICS_PER_REQUEST: usize = 20;

#[test]
fn topics_created_together_keep_records_written_right_after() {
    let node = TestNode::start_default().unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let mut names = Vec::new();
    for round in 0..ROUNDS {
        let batch: Vec<String> = (0..TOPICS_PER_REQUEST)
            .map(|i| format!("many-{round}-{i}"))
            .collect();
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(
                batch
                    .iter()
                    .map(|name| {
                        CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(1)
                            .with_replication_factor(1)
                    })
                    .collect(),
            );
        let response = conn.request(&request, 7).unwrap();
        for t in &response.topics {
            assert_eq!(
                t.error_code, 0,
                "creating {:?}: {:?}",
                t.name, t.error_message
            );
        }
        // Written at once, while the node's own cluster-state loop reacts to the creations.
        for name in &batch {
            let records =
                encode_batch(&[(Some(b"k"), Some(name.as_bytes()))], Compression::None, 1).unwrap();
            let produced = conn.produce(name, 0, records, 1).unwrap();
            assert_eq!(produced.error_code, 0, "producing to {name}");
            assert_eq!(produced.base_offset, 0, "first record of {name}");
        }
        names.extend(batch);
    }
    // One more request behind everything above, so the node has processed its own creations.
    for name in &names {
        assert_eq!(
            conn.log_end_offset(name, 0).unwrap(),
            1,
            "{name} lost its record:\n{}",
            node.log_tails()
        );
    }
    let log = node.stderr_text();
    assert!(
        !log.contains("topic deleted in the cluster"),
        "the node removed a topic it had just created:\n{}",
        node.log_tails()
    );
}
