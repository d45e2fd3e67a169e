package dev.tierlog.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client judged against a broker: Admin, KafkaProducer and KafkaConsumer with their
 * default settings (plus whatever the command line adds), through one round trip.
 *
 * <ol>
 *   <li>Admin: describeCluster (a cluster id, at least one node, a controller), createTopics
 *       (P partitions, the broker's default replication factor), describeTopics (P partitions
 *       0..P-1, each with a leader that is a cluster node), listOffsets (earliest 0, latest 0).
 *   <li>KafkaProducer: N keyed records, every acknowledgement awaited; per partition the offsets
 *       must be 0, 1, 2, ... in send order.
 *   <li>Admin.listOffsets: earliest 0 and latest = records acknowledged, per partition.
 *   <li>KafkaConsumer in a group (subscribe, poll until every record was seen or the deadline):
 *       every record exactly once, at the partition and offset the producer was told, with its
 *       key and value; then describeConsumerGroups (Stable, one member holding all P partitions)
 *       and commitSync.
 *   <li>Admin.listConsumerGroupOffsets: the committed offset of each partition is its end.
 * </ol>
 *
 * <p>Prints one JSON line to stdout: {@code {"ok":true,...}} and exits 0, or {@code
 * {"ok":false,"stage":"...","error":"..."}} and exits 1 (the error also goes to stderr).
 *
 * <p>Usage: {@code ClientCheck --bootstrap HOST:PORT [--topic T] [--group G] [--records N]
 * [--partitions P] [--timeout-ms MS] [--producer-prop K=V]... [--consumer-prop K=V]...
 * [--admin-prop K=V]...}
 */
public final class ClientCheck {
  private String bootstrap;
  private String topic = "java-client-check";
  private String group = "java-client-check-group";
  private int records = 300;
  private int partitions = 3;
  private long timeoutMs = 60_000;
  private final Properties producerExtra = new Properties();
  private final Properties consumerExtra = new Properties();
  private final Properties adminExtra = new Properties();

  private long deadline;
  /** Which step is running, for the failure message. */
  private String stage = "arguments";

  public static void main(String[] args) {
    ClientCheck check = new ClientCheck();
    long started = System.nanoTime();
    try {
      check.parse(args);
      String summary = check.run(started);
      System.out.println(summary);
      System.out.flush();
      System.exit(0);
    } catch (Throwable e) {
      String message = describe(e);
      System.err.println("ClientCheck FAILED at stage " + check.stage + ": " + message);
      e.printStackTrace(System.err);
      System.out.println(
          "{\"ok\":false,\"stage\":" + json(check.stage) + ",\"error\":" + json(message) + "}");
      System.out.flush();
      System.exit(1);
    }
  }

  private void parse(String[] args) {
    for (int i = 0; i < args.length; i++) {
      String flag = args[i];
      if (i + 1 >= args.length) {
        throw new IllegalArgumentException("missing value after " + flag);
      }
      String value = args[++i];
      switch (flag) {
        case "--bootstrap" -> bootstrap = value;
        case "--topic" -> topic = value;
        case "--group" -> group = value;
        case "--records" -> records = Integer.parseInt(value);
        case "--partitions" -> partitions = Integer.parseInt(value);
        case "--timeout-ms" -> timeoutMs = Long.parseLong(value);
        case "--producer-prop" -> put(producerExtra, value);
        case "--consumer-prop" -> put(consumerExtra, value);
        case "--admin-prop" -> put(adminExtra, value);
        default -> throw new IllegalArgumentException("unknown flag " + flag);
      }
    }
    if (bootstrap == null) {
      throw new IllegalArgumentException("--bootstrap HOST:PORT is required");
    }
  }

  private static void put(Properties props, String kv) {
    int eq = kv.indexOf('=');
    if (eq <= 0) {
      throw new IllegalArgumentException("expected KEY=VALUE, got " + kv);
    }
    props.setProperty(kv.substring(0, eq), kv.substring(eq + 1));
  }

  private String run(long started) throws Exception {
    deadline = started + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    Properties adminProps = new Properties();
    adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    adminProps.putAll(adminExtra);
    try (Admin admin = Admin.create(adminProps)) {
      stage = "describeCluster";
      DescribeClusterResult cluster = admin.describeCluster();
      String clusterId = await(cluster.clusterId());
      Collection<Node> nodes = await(cluster.nodes());
      Node controller = await(cluster.controller());
      check(clusterId != null && !clusterId.isEmpty(), "describeCluster: no cluster id");
      check(!nodes.isEmpty(), "describeCluster: no nodes");
      check(
          controller != null && !controller.isEmpty(),
          "describeCluster: no controller (got " + controller + ")");

      stage = "createTopics";
      await(
          admin
              .createTopics(List.of(new NewTopic(topic, Optional.of(partitions), Optional.empty())))
              .all());

      stage = "describeTopics";
      TopicDescription description = await(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
      check(description != null, "describeTopics: topic " + topic + " missing");
      check(!description.isInternal(), "describeTopics: topic reported internal");
      List<TopicPartitionInfo> infos = description.partitions();
      check(
          infos.size() == partitions,
          "describeTopics: " + infos.size() + " partitions, want " + partitions);
      for (int p = 0; p < partitions; p++) {
        TopicPartitionInfo info = infos.get(p);
        check(info.partition() == p, "describeTopics: partition #" + p + " is " + info.partition());
        check(
            info.leader() != null && !info.leader().isEmpty() && nodes.contains(info.leader()),
            "describeTopics: partition " + p + " leader " + info.leader() + " not among " + nodes);
        check(!info.isr().isEmpty(), "describeTopics: partition " + p + " has an empty ISR");
      }

      stage = "listOffsets (empty topic)";
      checkOffsets(admin, new long[partitions]);

      stage = "produce";
      Map<String, Sent> sent = produce();
      long[] ends = new long[partitions];
      for (Sent s : sent.values()) {
        ends[s.partition]++;
      }

      stage = "listOffsets (after produce)";
      checkOffsets(admin, ends);

      stage = "consume";
      int consumed = consume(admin, sent, ends);

      stage = "listConsumerGroupOffsets";
      Map<TopicPartition, OffsetAndMetadata> committed =
          await(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
      StringBuilder committedJson = new StringBuilder("{");
      for (int p = 0; p < partitions; p++) {
        OffsetAndMetadata om = committed.get(new TopicPartition(topic, p));
        check(om != null, "listConsumerGroupOffsets: no committed offset for partition " + p
            + " (got " + committed + ")");
        check(
            om.offset() == ends[p],
            "listConsumerGroupOffsets: partition " + p + " committed " + om.offset() + ", want "
                + ends[p]);
        committedJson.append(p == 0 ? "" : ",").append('"').append(p).append("\":").append(om.offset());
      }
      committedJson.append('}');

      StringBuilder endsJson = new StringBuilder("{");
      for (int p = 0; p < partitions; p++) {
        endsJson.append(p == 0 ? "" : ",").append('"').append(p).append("\":").append(ends[p]);
      }
      endsJson.append('}');
      long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
      return "{\"ok\":true,\"topic\":" + json(topic) + ",\"group\":" + json(group)
          + ",\"cluster_id\":" + json(clusterId) + ",\"nodes\":" + nodes.size()
          + ",\"produced\":" + sent.size() + ",\"consumed\":" + consumed
          + ",\"end_offsets\":" + endsJson + ",\"committed\":" + committedJson
          + ",\"elapsed_ms\":" + elapsedMs + "}";
    }
  }

  /** Where the producer was told a record went. */
  private record Sent(String key, String value, int partition, long offset) {}

  private Map<String, Sent> produce() throws Exception {
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    // Fail within the check's deadline rather than the producer's two-minute default.
    int budget = (int) Math.max(5_000, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Integer.toString(budget));
    // delivery.timeout.ms must cover linger.ms + request.timeout.ms.
    props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Integer.toString(Math.min(budget / 2, 30_000)));
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Integer.toString(budget));
    props.putAll(producerExtra);
    Map<String, Sent> sent = new HashMap<>();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      List<Future<RecordMetadata>> acks = new ArrayList<>(records);
      for (int i = 0; i < records; i++) {
        acks.add(producer.send(new ProducerRecord<>(topic, key(i), value(i))));
      }
      producer.flush();
      long[] next = new long[partitions];
      for (int i = 0; i < records; i++) {
        RecordMetadata md = await(acks.get(i));
        int p = md.partition();
        check(p >= 0 && p < partitions, "produce: record " + i + " acknowledged on partition " + p);
        // One producer, one in-flight order per partition: offsets follow send order.
        check(
            md.offset() == next[p],
            "produce: record " + i + " got offset " + md.offset() + " on partition " + p
                + ", want " + next[p]);
        next[p]++;
        sent.put(key(i), new Sent(key(i), value(i), p, md.offset()));
      }
      producer.close(remaining());
    }
    return sent;
  }

  private int consume(Admin admin, Map<String, Sent> sent, long[] ends) throws Exception {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.putAll(consumerExtra);
    Map<String, Integer> seen = new HashMap<>();
    int consumed = 0;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(List.of(topic));
      while (seen.size() < sent.size()) {
        if (System.nanoTime() >= deadline) {
          throw new IllegalStateException(
              "consume: deadline passed with " + seen.size() + " of " + sent.size()
                  + " records seen; assignment " + consumer.assignment());
        }
        ConsumerRecords<String, String> batch = consumer.poll(Duration.ofMillis(200));
        for (ConsumerRecord<String, String> r : batch) {
          consumed++;
          check(r.topic().equals(topic), "consume: record from topic " + r.topic());
          Sent want = sent.get(r.key());
          check(want != null, "consume: unexpected key " + r.key() + " at " + where(r));
          check(
              r.value().equals(want.value),
              "consume: key " + r.key() + " has value " + r.value() + ", want " + want.value);
          check(
              r.partition() == want.partition && r.offset() == want.offset,
              "consume: key " + r.key() + " at " + where(r) + ", but produced to partition "
                  + want.partition + " offset " + want.offset);
          Integer before = seen.put(r.key(), 1);
          check(before == null, "consume: key " + r.key() + " delivered twice (" + where(r) + ")");
        }
      }
      // A few more polls must bring nothing: every record exactly once, nothing beyond the ends.
      for (int i = 0; i < 3; i++) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
          throw new IllegalStateException("consume: extra record " + r.key() + " at " + where(r));
        }
      }

      stage = "describeConsumerGroups";
      ConsumerGroupDescription group =
          await(admin.describeConsumerGroups(List.of(this.group)).all()).get(this.group);
      check(group != null, "describeConsumerGroups: group " + this.group + " missing");
      check(
          group.groupState() == GroupState.STABLE,
          "describeConsumerGroups: state " + group.groupState() + ", want STABLE");
      check(
          group.members().size() == 1,
          "describeConsumerGroups: " + group.members().size() + " members, want 1");
      int assigned = group.members().iterator().next().assignment().topicPartitions().size();
      check(
          assigned == partitions,
          "describeConsumerGroups: member holds " + assigned + " partitions, want " + partitions);

      stage = "commitSync";
      // Commit the positions (the ends of the partitions) the group has reached.
      Map<TopicPartition, OffsetAndMetadata> positions = new TreeMap<>(
          (a, b) -> Integer.compare(a.partition(), b.partition()));
      for (int p = 0; p < partitions; p++) {
        TopicPartition tp = new TopicPartition(topic, p);
        long position = consumer.position(tp, remaining());
        check(position == ends[p], "position of partition " + p + " is " + position + ", want " + ends[p]);
        positions.put(tp, new OffsetAndMetadata(position));
      }
      consumer.commitSync(positions, remaining());
      Map<TopicPartition, OffsetAndMetadata> committed =
          consumer.committed(positions.keySet(), remaining());
      for (Map.Entry<TopicPartition, OffsetAndMetadata> e : positions.entrySet()) {
        OffsetAndMetadata c = committed.get(e.getKey());
        check(
            c != null && c.offset() == e.getValue().offset(),
            "consumer.committed: " + e.getKey() + " is " + c + ", want " + e.getValue().offset());
      }
      consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(remaining()));
    }
    return consumed;
  }

  private void checkOffsets(Admin admin, long[] ends) throws Exception {
    Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
    Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
    for (int p = 0; p < partitions; p++) {
      earliest.put(new TopicPartition(topic, p), OffsetSpec.earliest());
      latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
    }
    Map<TopicPartition, ListOffsetsResultInfo> lo = await(admin.listOffsets(earliest).all());
    Map<TopicPartition, ListOffsetsResultInfo> hi = await(admin.listOffsets(latest).all());
    for (int p = 0; p < partitions; p++) {
      TopicPartition tp = new TopicPartition(topic, p);
      check(lo.get(tp).offset() == 0, "listOffsets: earliest of " + tp + " is " + lo.get(tp).offset());
      check(
          hi.get(tp).offset() == ends[p],
          "listOffsets: latest of " + tp + " is " + hi.get(tp).offset() + ", want " + ends[p]);
    }
  }

  private static String key(int i) {
    return "key-" + i;
  }

  private static String value(int i) {
    return "value-" + i + "-" + "x".repeat(i % 17);
  }

  private static String where(ConsumerRecord<?, ?> r) {
    return r.topic() + "-" + r.partition() + "@" + r.offset();
  }

  private Duration remaining() {
    return Duration.ofNanos(Math.max(deadline - System.nanoTime(), TimeUnit.SECONDS.toNanos(1)));
  }

  private <T> T await(Future<T> f) throws Exception {
    try {
      return f.get(Math.max(deadline - System.nanoTime(), 1), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw e.getCause() instanceof Exception cause ? cause : e;
    } catch (TimeoutException e) {
      throw new TimeoutException("deadline of " + timeoutMs + " ms passed");
    }
  }

  private static void check(boolean ok, String message) {
    if (!ok) {
      throw new IllegalStateException(message);
    }
  }

  private static String describe(Throwable e) {
    StringBuilder out = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (out.length() > 0) {
        out.append(": caused by ");
      }
      out.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
      if (t.getCause() == t) {
        break;
      }
    }
    return out.toString();
  }

  static String json(String s) {
    if (s == null) {
      return "null";
    }
    StringBuilder out = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> out.append("\\\"");
        case '\\' -> out.append("\\\\");
        case '\n' -> out.append("\\n");
        case '\r' -> out.append("\\r");
        case '\t' -> out.append("\\t");
        default -> {
          if (c < 0x20) {
            out.append(String.format("\\u%04x", (int) c));
          } else {
            out.append(c);
          }
        }
      }
    }
    return out.append('"').toString();
  }
}
