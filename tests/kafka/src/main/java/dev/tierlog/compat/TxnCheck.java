package dev.tierlog.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka's exactly-once semantics judged with the Java client (4.3.1): transactions, the
 * last stable offset, read_committed fetches, transactional offset commits, fencing, the
 * coordinator's timeout abort and the idempotent producer's defaults. One scenario per run:
 *
 * <ul>
 *   <li>{@code commit-abort}: transactions A (committed), B (aborted), C (committed) of N records
 *       each over P partitions; read_committed sees exactly A then C per partition,
 *       read_uncommitted A, B, C; read_committed endOffsets (the LSO) equal the log end once
 *       nothing is open; with a transaction D open, the LSO is D's first offset while the log end
 *       is past it.
 *   <li>{@code send-offsets}: consume-transform-produce in a group: all input in one transaction
 *       with sendOffsetsToTransaction, aborted once (the group's committed offsets stay absent,
 *       the output shows nothing to read_committed), then redone and committed (offsets appear
 *       only after the commit; the output holds each input exactly once).
 *   <li>{@code zombie}: two producers with one transactional.id; the second's initTransactions
 *       fences the first, whose next send or commit fails (the exception class is reported);
 *       nothing of the zombie's transaction is ever committed.
 *   <li>{@code timeout}: a transaction left open with a short transaction.timeout.ms blocks
 *       read_committed readers at its first offset (the LSO) until the coordinator aborts it;
 *       then the records written after it become visible and its own never do.
 *   <li>{@code idempotent-defaults}: a KafkaProducer with default settings (idempotence on,
 *       acks=all) sends N keyed records (optionally paced, for failover tests); every one is read
 *       exactly once at its acknowledged offset, in send order per partition.
 *   <li>{@code kill-commit}: for a fault injected from outside: {@code {"ev":"initialized"}} once
 *       the producer has its id, then one transaction of N records over P partitions,
 *       acknowledged, then {@code {"ev":"committing"}} is printed and the commit
 *       runs; the summary reports whether it succeeded ({@code "committed"}) and its error. It
 *       judges nothing itself: the caller reads the topic read_committed (all or nothing).
 * </ul>
 *
 * <p>With {@code --print-events true} every acknowledgement and read is printed as a JSON line
 * ({@code {"ev":"ack","id":..,"p":..,"o":..}}, {@code "ev":"read"}, {@code "ev":"fail"}) for an
 * outside checker. The last stdout line is the JSON summary {@code {"ok":true,...}} (exit 0) or
 * {@code {"ok":false,"stage":..,"error":..}} (exit 1).
 *
 * <p>Usage: {@code TxnCheck --bootstrap HOST:PORT --scenario S [--topic PREFIX] [--records N]
 * [--partitions P] [--timeout-ms MS] [--txn-timeout-ms MS] [--interval-ms MS]
 * [--print-events true] [--producer-prop K=V]... [--consumer-prop K=V]...}
 */
public final class TxnCheck {
  private String bootstrap;
  private String scenario;
  private String prefix = "txn-check";
  private int records = 30;
  private int partitions = 3;
  private long timeoutMs = 90_000;
  private int txnTimeoutMs = 5_000;
  private long intervalMs = 0;
  private boolean printEvents = false;
  private final Properties producerExtra = new Properties();
  private final Properties consumerExtra = new Properties();

  private long deadline;
  private String stage = "arguments";
  /** Extra summary fields, in order. */
  private final StringBuilder summary = new StringBuilder();

  public static void main(String[] args) {
    TxnCheck check = new TxnCheck();
    long started = System.nanoTime();
    try {
      check.parse(args);
      check.deadline = started + TimeUnit.MILLISECONDS.toNanos(check.timeoutMs);
      check.run();
      long elapsed = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
      System.out.println("{\"ok\":true,\"scenario\":" + json(check.scenario) + check.summary
          + ",\"elapsed_ms\":" + elapsed + "}");
      System.out.flush();
      System.exit(0);
    } catch (Throwable e) {
      String message = describe(e);
      System.err.println("TxnCheck FAILED at stage " + check.stage + ": " + message);
      e.printStackTrace(System.err);
      System.out.println("{\"ok\":false,\"scenario\":" + json(check.scenario) + ",\"stage\":"
          + json(check.stage) + ",\"error\":" + json(message) + "}");
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
        case "--scenario" -> scenario = value;
        case "--topic" -> prefix = value;
        case "--records" -> records = Integer.parseInt(value);
        case "--partitions" -> partitions = Integer.parseInt(value);
        case "--timeout-ms" -> timeoutMs = Long.parseLong(value);
        case "--txn-timeout-ms" -> txnTimeoutMs = Integer.parseInt(value);
        case "--interval-ms" -> intervalMs = Long.parseLong(value);
        case "--print-events" -> printEvents = Boolean.parseBoolean(value);
        case "--producer-prop" -> put(producerExtra, value);
        case "--consumer-prop" -> put(consumerExtra, value);
        default -> throw new IllegalArgumentException("unknown flag " + flag);
      }
    }
    if (bootstrap == null || scenario == null) {
      throw new IllegalArgumentException("--bootstrap HOST:PORT and --scenario S are required");
    }
  }

  private void run() throws Exception {
    switch (scenario) {
      case "commit-abort" -> commitAbort();
      case "send-offsets" -> sendOffsets();
      case "zombie" -> zombie();
      case "timeout" -> timeout();
      case "idempotent-defaults" -> idempotentDefaults();
      case "kill-commit" -> killCommit();
      default -> throw new IllegalArgumentException("unknown scenario " + scenario);
    }
  }

  // ---- commit-abort --------------------------------------------------------------------------

  private void commitAbort() throws Exception {
    String topic = prefix + "-commit-abort";
    try (Admin admin = admin()) {
      createTopic(admin, topic, partitions);
      List<TopicPartition> tps = partitionsOf(topic, partitions);
      List<List<String>> committed = perPartition(partitions);
      List<List<String>> all = perPartition(partitions);
      long[] lastOffset = new long[partitions];
      try (KafkaProducer<String, String> producer = producer(prefix + "-commit-abort-txn")) {
        stage = "initTransactions";
        producer.initTransactions();
        for (String txn : List.of("A", "B", "C")) {
          stage = "transaction " + txn;
          producer.beginTransaction();
          List<Future<RecordMetadata>> acks = new ArrayList<>();
          for (int i = 0; i < records; i++) {
            acks.add(producer.send(
                new ProducerRecord<>(topic, i % partitions, txn + "-" + i, txn + "-" + i)));
          }
          if (txn.equals("B")) {
            producer.flush();
            producer.abortTransaction();
          } else {
            producer.commitTransaction();
          }
          for (int i = 0; i < records; i++) {
            String value = txn + "-" + i;
            int p = i % partitions;
            if (!txn.equals("B")) {
              // A commit completes only once every send of the transaction is acknowledged.
              RecordMetadata md = acks.get(i).get(0, TimeUnit.MILLISECONDS);
              check(md.partition() == p, value + " acknowledged on partition " + md.partition());
              lastOffset[p] = md.offset();
              committed.get(p).add(value);
            }
            all.get(p).add(value);
          }
        }

        stage = "endOffsets after commit";
        Map<TopicPartition, Long> lso = endOffsets(tps, IsolationLevel.READ_COMMITTED);
        Map<TopicPartition, Long> hw = endOffsets(tps, IsolationLevel.READ_UNCOMMITTED);
        for (int p = 0; p < partitions; p++) {
          TopicPartition tp = tps.get(p);
          // C's last record, then C's commit marker: the log ends one past the marker.
          check(hw.get(tp) == lastOffset[p] + 2,
              "log end of " + tp + " is " + hw.get(tp) + ", want " + (lastOffset[p] + 2)
                  + " (C's last record at " + lastOffset[p] + ", then its marker)");
          check(lso.get(tp).equals(hw.get(tp)),
              "with no open transaction the LSO of " + tp + " (" + lso.get(tp)
                  + ") must equal the log end (" + hw.get(tp) + ")");
        }
        Map<TopicPartition, ListOffsetsResultInfo> adminLso = await(admin.listOffsets(
            specs(tps, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
            .all());
        for (TopicPartition tp : tps) {
          check(adminLso.get(tp).offset() == lso.get(tp),
              "Admin.listOffsets(read_committed) of " + tp + " is " + adminLso.get(tp).offset()
                  + ", the consumer's endOffsets " + lso.get(tp));
        }
        summary.append(",\"end_offsets\":").append(longs(tps, hw));

        stage = "read_committed consumer";
        check(read(tps, IsolationLevel.READ_COMMITTED, lso).equals(committed),
            "read_committed must see exactly A then C per partition");
        stage = "read_uncommitted consumer";
        check(read(tps, IsolationLevel.READ_UNCOMMITTED, hw).equals(all),
            "read_uncommitted must see A, B and C per partition");

        stage = "LSO of an open transaction";
        producer.beginTransaction();
        long[] firstOpen = new long[partitions];
        List<Future<RecordMetadata>> open = new ArrayList<>();
        for (int p = 0; p < partitions; p++) {
          open.add(producer.send(new ProducerRecord<>(topic, p, "D-" + p, "D-" + p)));
        }
        producer.flush();
        for (int p = 0; p < partitions; p++) {
          firstOpen[p] = await(open.get(p)).offset();
        }
        Map<TopicPartition, Long> openLso = endOffsets(tps, IsolationLevel.READ_COMMITTED);
        Map<TopicPartition, Long> openHw = endOffsets(tps, IsolationLevel.READ_UNCOMMITTED);
        for (int p = 0; p < partitions; p++) {
          TopicPartition tp = tps.get(p);
          check(openLso.get(tp) == firstOpen[p],
              "with D open, the LSO of " + tp + " is " + openLso.get(tp) + ", want D's first offset "
                  + firstOpen[p]);
          check(openHw.get(tp) == firstOpen[p] + 1,
              "with D open, the log end of " + tp + " is " + openHw.get(tp) + ", want "
                  + (firstOpen[p] + 1));
        }
        producer.abortTransaction();
        summary.append(",\"open_lso\":").append(longs(tps, openLso));
        Map<TopicPartition, Long> after = endOffsets(tps, IsolationLevel.READ_COMMITTED);
        for (int p = 0; p < partitions; p++) {
          TopicPartition tp = tps.get(p);
          check(after.get(tp) == firstOpen[p] + 2,
              "after D's abort, the LSO of " + tp + " is " + after.get(tp) + ", want "
                  + (firstOpen[p] + 2) + " (past D's record and abort marker)");
        }
        stage = "read_committed after D's abort";
        check(read(tps, IsolationLevel.READ_COMMITTED, after).equals(committed),
            "after D's abort read_committed still sees exactly A then C");
      }
    }
  }

  // ---- send-offsets --------------------------------------------------------------------------

  private void sendOffsets() throws Exception {
    String input = prefix + "-in";
    String output = prefix + "-out";
    String group = prefix + "-group";
    try (Admin admin = admin()) {
      createTopic(admin, input, partitions);
      createTopic(admin, output, partitions);
      List<TopicPartition> inTps = partitionsOf(input, partitions);
      List<TopicPartition> outTps = partitionsOf(output, partitions);

      stage = "produce the input";
      long[] inputEnds = new long[partitions];
      try (KafkaProducer<String, String> producer = producer(null)) {
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        for (int i = 0; i < records; i++) {
          acks.add(producer.send(new ProducerRecord<>(input, i % partitions, "k" + i, "in-" + i)));
        }
        for (Future<RecordMetadata> f : acks) {
          inputEnds[await(f).partition()]++;
        }
      }

      Properties cprops = consumerProps(IsolationLevel.READ_COMMITTED);
      cprops.put(ConsumerConfig.GROUP_ID_CONFIG, group);
      try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cprops);
          KafkaProducer<String, String> producer = producer(prefix + "-send-offsets-txn")) {
        stage = "initTransactions";
        producer.initTransactions();
        consumer.subscribe(List.of(input));
        for (String attempt : List.of("abort", "commit")) {
          stage = "consume the input (" + attempt + ")";
          List<ConsumerRecord<String, String>> batch = pollAll(consumer, records);
          stage = "transaction (" + attempt + ")";
          producer.beginTransaction();
          Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
          for (ConsumerRecord<String, String> r : batch) {
            producer.send(new ProducerRecord<>(output, r.partition(), r.key(), "out-" + r.value()));
            next.put(new TopicPartition(input, r.partition()), new OffsetAndMetadata(r.offset() + 1));
          }
          producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
          producer.flush();
          stage = "committed offsets while the transaction is open (" + attempt + ")";
          Map<TopicPartition, OffsetAndMetadata> before = groupOffsets(admin, group, false);
          check(before.isEmpty(),
              "offsets sent to an open transaction must not be visible: " + before);
          if (attempt.equals("abort")) {
            producer.abortTransaction();
            stage = "committed offsets after abort";
            Map<TopicPartition, OffsetAndMetadata> after = groupOffsets(admin, group, true);
            check(after.isEmpty(), "offsets of an aborted transaction must stay absent: " + after);
            // Redo from the last committed offsets (none: the beginning).
            consumer.seekToBeginning(consumer.assignment());
          } else {
            producer.commitTransaction();
            stage = "committed offsets after commit";
            // The commit returns once the coordinator decided; the offsets land with the
            // markers a moment later (Kafka too): wait for them, within the deadline.
            long committedAt = System.nanoTime();
            Map<TopicPartition, OffsetAndMetadata> after = groupOffsets(admin, group, true);
            while (after.size() < partitions && System.nanoTime() < deadline) {
              Thread.sleep(50);
              after = groupOffsets(admin, group, true);
            }
            summary.append(",\"offsets_visible_after_ms\":")
                .append(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - committedAt));
            for (int p = 0; p < partitions; p++) {
              OffsetAndMetadata om = after.get(inTps.get(p));
              check(om != null && om.offset() == inputEnds[p],
                  "after commit the group's offset of " + inTps.get(p) + " is " + om + ", want "
                      + inputEnds[p]);
            }
          }
        }
      }

      stage = "read the output (read_committed)";
      Map<TopicPartition, Long> lso = endOffsets(outTps, IsolationLevel.READ_COMMITTED);
      List<List<String>> got = read(outTps, IsolationLevel.READ_COMMITTED, lso);
      List<List<String>> want = perPartition(partitions);
      for (int i = 0; i < records; i++) {
        want.get(i % partitions).add("out-in-" + i);
      }
      check(got.equals(want),
          "read_committed output must hold each input exactly once, in input order; got " + got);
      Map<TopicPartition, Long> hw = endOffsets(outTps, IsolationLevel.READ_UNCOMMITTED);
      List<List<String>> raw = read(outTps, IsolationLevel.READ_UNCOMMITTED, hw);
      int rawCount = raw.stream().mapToInt(List::size).sum();
      check(rawCount == 2 * records,
          "read_uncommitted must see both attempts (" + 2 * records + " records), got " + rawCount);
      summary.append(",\"output\":").append(records).append(",\"uncommitted_output\":")
          .append(rawCount);
    }
  }

  // ---- zombie --------------------------------------------------------------------------------

  private void zombie() throws Exception {
    String topic = prefix + "-zombie";
    String tid = prefix + "-zombie-txn";
    try (Admin admin = admin()) {
      createTopic(admin, topic, partitions);
      List<TopicPartition> tps = partitionsOf(topic, partitions);
      KafkaProducer<String, String> zombie = producer(tid);
      stage = "first producer: initTransactions and an open transaction";
      zombie.initTransactions();
      zombie.beginTransaction();
      await(zombie.send(new ProducerRecord<>(topic, 0, "zombie", "zombie-0")));

      stage = "second producer: initTransactions fences the first";
      try (KafkaProducer<String, String> successor = producer(tid)) {
        successor.initTransactions();

        stage = "the zombie's send and commit";
        String fencedBy = null;
        String where = "send";
        try {
          await(zombie.send(new ProducerRecord<>(topic, 1, "zombie", "zombie-1")));
          where = "commit";
          zombie.commitTransaction();
        } catch (Exception e) {
          fencedBy = fencingCause(e);
          check(fencedBy != null, "the zombie's " + where + " failed, but not fenced: " + describe(e));
        }
        check(fencedBy != null, "the zombie's commit succeeded after it was fenced");
        summary.append(",\"fenced_by\":").append(json(fencedBy)).append(",\"at\":")
            .append(json(where));
        zombie.close(Duration.ZERO);

        stage = "second producer commits";
        successor.beginTransaction();
        await(successor.send(new ProducerRecord<>(topic, 2, "successor", "successor-0")));
        successor.commitTransaction();
      }

      stage = "read_committed consumer";
      Map<TopicPartition, Long> lso = endOffsets(tps, IsolationLevel.READ_COMMITTED);
      List<String> seen = new ArrayList<>();
      read(tps, IsolationLevel.READ_COMMITTED, lso).forEach(seen::addAll);
      check(seen.equals(List.of("successor-0")),
          "read_committed must see only the successor's record, got " + seen);
    }
  }

  /** The simple name of the fencing exception in {@code e}'s causes, else null. */
  private static String fencingCause(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof ProducerFencedException || t instanceof InvalidProducerEpochException) {
        return t.getClass().getSimpleName();
      }
      if (t.getCause() == t) {
        break;
      }
    }
    return null;
  }

  // ---- timeout -------------------------------------------------------------------------------

  private void timeout() throws Exception {
    String topic = prefix + "-timeout";
    TopicPartition tp = new TopicPartition(topic, 0);
    List<TopicPartition> tps = List.of(tp);
    try (Admin admin = admin();
        KafkaProducer<String, String> plain = producer(null)) {
      createTopic(admin, topic, 1);
      stage = "records before the transaction";
      for (int i = 0; i < 3; i++) {
        await(plain.send(new ProducerRecord<>(topic, 0, "before", "before-" + i)));
      }

      stage = "a transaction left open";
      Properties extra = new Properties();
      extra.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, Integer.toString(txnTimeoutMs));
      KafkaProducer<String, String> abandoned = producer(prefix + "-timeout-txn", extra);
      abandoned.initTransactions();
      long begun = System.nanoTime();
      abandoned.beginTransaction();
      long first = await(abandoned.send(new ProducerRecord<>(topic, 0, "abandoned", "abandoned-0")))
          .offset();
      for (int i = 1; i < 3; i++) {
        await(abandoned.send(new ProducerRecord<>(topic, 0, "abandoned", "abandoned-" + i)));
      }
      // Never committed nor aborted: the producer just goes quiet.

      stage = "records after the open transaction";
      for (int i = 0; i < 3; i++) {
        await(plain.send(new ProducerRecord<>(topic, 0, "after", "after-" + i)));
      }

      stage = "read_committed blocked at the LSO";
      Map<TopicPartition, Long> lso = endOffsets(tps, IsolationLevel.READ_COMMITTED);
      long blockedAtMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - begun);
      check(blockedAtMs < txnTimeoutMs,
          "the LSO check ran " + blockedAtMs + " ms after begin, past transaction.timeout.ms "
              + txnTimeoutMs + ": raise --txn-timeout-ms");
      check(lso.get(tp) == first,
          "with the transaction open the LSO is " + lso.get(tp) + ", want its first offset " + first);

      Properties cprops = consumerProps(IsolationLevel.READ_COMMITTED);
      List<String> seen = new ArrayList<>();
      long visibleAtMs;
      try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cprops)) {
        consumer.assign(tps);
        consumer.seekToBeginning(tps);
        while (seen.size() < 3) {
          for (ConsumerRecord<String, String> r : pollOnce(consumer)) {
            seen.add(r.value());
          }
        }
        long position = consumer.position(tp, remaining());
        long elapsed = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - begun);
        check(elapsed >= txnTimeoutMs || position == first,
            "before the timeout the read_committed position is " + position
                + ", want the LSO " + first);

        stage = "wait for the coordinator's abort";
        while (!seen.contains("after-2")) {
          for (ConsumerRecord<String, String> r : pollOnce(consumer)) {
            seen.add(r.value());
          }
        }
        visibleAtMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - begun);
      }
      check(visibleAtMs >= txnTimeoutMs,
          "records after the open transaction became visible " + visibleAtMs
              + " ms after it began, before transaction.timeout.ms " + txnTimeoutMs);
      check(seen.equals(List.of("before-0", "before-1", "before-2", "after-0", "after-1", "after-2")),
          "read_committed must see the records around the timed-out transaction and none of it: "
              + seen);
      abandoned.close(Duration.ZERO);

      stage = "read_uncommitted sees the abandoned records";
      Map<TopicPartition, Long> hw = endOffsets(tps, IsolationLevel.READ_UNCOMMITTED);
      List<String> raw = read(tps, IsolationLevel.READ_UNCOMMITTED, hw).get(0);
      check(raw.containsAll(List.of("abandoned-0", "abandoned-1", "abandoned-2")),
          "read_uncommitted must see the abandoned records: " + raw);
      Map<TopicPartition, Long> finalLso = endOffsets(tps, IsolationLevel.READ_COMMITTED);
      check(finalLso.get(tp).equals(hw.get(tp)),
          "after the abort the LSO " + finalLso.get(tp) + " must equal the log end " + hw.get(tp));
      summary.append(",\"txn_timeout_ms\":").append(txnTimeoutMs).append(",\"lso_checked_at_ms\":")
          .append(blockedAtMs).append(",\"visible_after_ms\":").append(visibleAtMs);
    }
  }

  // ---- kill-commit -------------------------------------------------------------------------

  private void killCommit() throws Exception {
    String topic = prefix + "-kill-commit";
    try (Admin admin = admin()) {
      createTopic(admin, topic, partitions);
    }
    Properties extra = new Properties();
    extra.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, Integer.toString(txnTimeoutMs));
    try (KafkaProducer<String, String> producer = producer(prefix + "-kill-commit-txn", extra)) {
      stage = "initTransactions";
      producer.initTransactions();
      // The coordinator is known from here on: a test looks it up now, to kill it at the commit.
      System.out.println("{\"ev\":\"initialized\"}");
      System.out.flush();
      stage = "send";
      producer.beginTransaction();
      List<Future<RecordMetadata>> acks = new ArrayList<>();
      for (int i = 0; i < records; i++) {
        acks.add(producer.send(new ProducerRecord<>(topic, i % partitions, "kc", "kc-" + i)));
      }
      producer.flush();
      for (int i = 0; i < records; i++) {
        RecordMetadata md = await(acks.get(i));
        event("{\"ev\":\"ack\",\"id\":" + json("kc-" + i) + ",\"p\":" + md.partition()
            + ",\"o\":" + md.offset() + "}");
      }
      stage = "commit";
      System.out.println("{\"ev\":\"committing\"}");
      System.out.flush();
      long started = System.nanoTime();
      String error = null;
      try {
        producer.commitTransaction();
      } catch (Exception e) {
        error = describe(e);
      }
      summary.append(",\"committed\":").append(error == null).append(",\"error\":")
          .append(json(error)).append(",\"commit_ms\":")
          .append(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started));
      producer.close(Duration.ZERO);
    }
  }

  // ---- idempotent-defaults -------------------------------------------------------------------

  private void idempotentDefaults() throws Exception {
    String topic = prefix + "-idempotent";
    try (Admin admin = admin()) {
      createTopic(admin, topic, partitions);
      List<TopicPartition> tps = partitionsOf(topic, partitions);
      stage = "produce with default settings";
      List<Future<RecordMetadata>> acks = new ArrayList<>(records);
      Map<String, int[]> where = new HashMap<>();
      List<List<String>> want = perPartition(partitions);
      int failed = 0;
      // Only timeouts are set (within the check's deadline): idempotence and acks keep their
      // defaults (true, all).
      try (KafkaProducer<String, String> producer = producer(null)) {
        for (int i = 0; i < records; i++) {
          acks.add(producer.send(new ProducerRecord<>(topic, "key-" + (i % 97), "seq-" + i)));
          if (intervalMs > 0) {
            Thread.sleep(intervalMs);
          }
        }
        producer.flush();
        long[] next = new long[partitions];
        for (int i = 0; i < records; i++) {
          String id = "seq-" + i;
          RecordMetadata md;
          try {
            md = await(acks.get(i));
          } catch (Exception e) {
            failed++;
            event("{\"ev\":\"fail\",\"id\":" + json(id) + ",\"error\":" + json(describe(e)) + "}");
            continue;
          }
          event("{\"ev\":\"ack\",\"id\":" + json(id) + ",\"p\":" + md.partition() + ",\"o\":"
              + md.offset() + "}");
          // One producer: acknowledged offsets follow send order per partition.
          check(md.offset() >= next[md.partition()],
              id + " acknowledged at " + md.partition() + "@" + md.offset()
                  + ", behind an earlier record");
          next[md.partition()] = md.offset() + 1;
          where.put(id, new int[] {md.partition(), (int) md.offset()});
          want.get(md.partition()).add(id);
        }
      }
      check(failed == 0, failed + " of " + records + " sends failed (see the fail events)");

      stage = "consume";
      Map<TopicPartition, Long> ends = endOffsets(tps, IsolationLevel.READ_UNCOMMITTED);
      List<List<String>> got = readWithOffsets(tps, ends, where);
      check(got.equals(want), "every record exactly once in send order per partition");
      summary.append(",\"produced\":").append(records).append(",\"consumed\":")
          .append(got.stream().mapToInt(List::size).sum());
    }
  }

  /** Like {@link #read} but checks each record is at its acknowledged offset and prints it. */
  private List<List<String>> readWithOffsets(
      List<TopicPartition> tps, Map<TopicPartition, Long> ends, Map<String, int[]> where)
      throws Exception {
    List<List<String>> out = perPartition(tps.size());
    Set<String> seen = new HashSet<>();
    try (KafkaConsumer<String, String> consumer =
        new KafkaConsumer<>(consumerProps(IsolationLevel.READ_COMMITTED))) {
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      while (!reached(consumer, tps, ends)) {
        for (ConsumerRecord<String, String> r : pollOnce(consumer)) {
          event("{\"ev\":\"read\",\"id\":" + json(r.value()) + ",\"p\":" + r.partition()
              + ",\"o\":" + r.offset() + "}");
          int[] at = where.get(r.value());
          check(at != null, "read " + r.value() + " that was never acknowledged");
          check(at[0] == r.partition() && at[1] == r.offset(),
              r.value() + " read at " + r.partition() + "@" + r.offset() + ", acknowledged at "
                  + at[0] + "@" + at[1]);
          check(seen.add(r.value()), r.value() + " read twice");
          out.get(r.partition()).add(r.value());
        }
      }
    }
    return out;
  }

  // ---- clients -------------------------------------------------------------------------------

  private Admin admin() {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    return Admin.create(props);
  }

  private void createTopic(Admin admin, String topic, int count) throws Exception {
    String was = stage;
    stage = "createTopics " + topic;
    await(admin.createTopics(List.of(new NewTopic(topic, Optional.of(count), Optional.empty())))
        .all());
    stage = was;
  }

  private KafkaProducer<String, String> producer(String transactionalId) {
    return producer(transactionalId, new Properties());
  }

  /**
   * A producer with the client's defaults except timeouts bounded by the check's deadline, plus
   * {@code transactional.id} (if not null), {@code extra} and the command line's properties.
   */
  private KafkaProducer<String, String> producer(String transactionalId, Properties extra) {
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    int budget = (int) Math.max(10_000, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Integer.toString(budget));
    props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Integer.toString(Math.min(budget / 2, 30_000)));
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Integer.toString(budget));
    if (transactionalId != null) {
      props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
    }
    props.putAll(extra);
    props.putAll(producerExtra);
    return new KafkaProducer<>(props);
  }

  private Properties consumerProps(IsolationLevel isolation) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation.toString());
    props.putAll(consumerExtra);
    return props;
  }

  /** End offsets as a consumer with {@code isolation} sees them (read_committed: the LSO). */
  private Map<TopicPartition, Long> endOffsets(List<TopicPartition> tps, IsolationLevel isolation) {
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps(isolation))) {
      return consumer.endOffsets(tps, remaining());
    }
  }

  /** Values per partition from the beginning until each position reaches {@code ends}. */
  private List<List<String>> read(
      List<TopicPartition> tps, IsolationLevel isolation, Map<TopicPartition, Long> ends) {
    List<List<String>> out = perPartition(tps.size());
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps(isolation))) {
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      while (!reached(consumer, tps, ends)) {
        for (ConsumerRecord<String, String> r : pollOnce(consumer)) {
          out.get(tps.indexOf(new TopicPartition(r.topic(), r.partition()))).add(r.value());
        }
      }
      // Nothing beyond the ends.
      for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(300))) {
        throw new IllegalStateException("record beyond the end: " + r.value() + " at "
            + r.partition() + "@" + r.offset());
      }
    }
    return out;
  }

  private boolean reached(
      KafkaConsumer<String, String> consumer, List<TopicPartition> tps, Map<TopicPartition, Long> ends) {
    for (TopicPartition tp : tps) {
      if (consumer.position(tp, remaining()) < ends.get(tp)) {
        return false;
      }
    }
    return true;
  }

  /** Polls a subscribed consumer until {@code n} records arrived. */
  private List<ConsumerRecord<String, String>> pollAll(KafkaConsumer<String, String> consumer, int n) {
    List<ConsumerRecord<String, String>> out = new ArrayList<>();
    while (out.size() < n) {
      for (ConsumerRecord<String, String> r : pollOnce(consumer)) {
        out.add(r);
      }
    }
    check(out.size() == n, "polled " + out.size() + " records, want " + n);
    return out;
  }

  private ConsumerRecords<String, String> pollOnce(KafkaConsumer<String, String> consumer) {
    if (System.nanoTime() >= deadline) {
      throw new IllegalStateException("deadline of " + timeoutMs + " ms passed while polling");
    }
    return consumer.poll(Duration.ofMillis(200));
  }

  /**
   * The group's committed offsets. {@code stable}: OffsetFetch with require_stable, which waits
   * while a transaction holding offsets of the group is being completed (the commit returns when
   * the coordinator decided; the offsets land with the markers, a moment later).
   */
  private Map<TopicPartition, OffsetAndMetadata> groupOffsets(
      Admin admin, String group, boolean stable) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
    await(admin
            .listConsumerGroupOffsets(group, new ListConsumerGroupOffsetsOptions().requireStable(stable))
            .partitionsToOffsetAndMetadata())
        .forEach((tp, om) -> {
          if (om != null) {
            out.put(tp, om);
          }
        });
    return out;
  }

  // ---- helpers -------------------------------------------------------------------------------

  private void event(String line) {
    if (printEvents) {
      System.out.println(line);
    }
  }

  private static List<TopicPartition> partitionsOf(String topic, int n) {
    List<TopicPartition> out = new ArrayList<>();
    for (int p = 0; p < n; p++) {
      out.add(new TopicPartition(topic, p));
    }
    return out;
  }

  private static List<List<String>> perPartition(int n) {
    List<List<String>> out = new ArrayList<>();
    for (int p = 0; p < n; p++) {
      out.add(new ArrayList<>());
    }
    return out;
  }

  private static Map<TopicPartition, OffsetSpec> specs(List<TopicPartition> tps, OffsetSpec spec) {
    Map<TopicPartition, OffsetSpec> out = new HashMap<>();
    tps.forEach(tp -> out.put(tp, spec));
    return out;
  }

  private static String longs(List<TopicPartition> tps, Map<TopicPartition, Long> m) {
    StringBuilder out = new StringBuilder("[");
    for (int i = 0; i < tps.size(); i++) {
      out.append(i == 0 ? "" : ",").append(m.get(tps.get(i)));
    }
    return out.append(']').toString();
  }

  static void put(Properties props, String kv) {
    int eq = kv.indexOf('=');
    if (eq <= 0) {
      throw new IllegalArgumentException("expected KEY=VALUE, got " + kv);
    }
    props.setProperty(kv.substring(0, eq), kv.substring(eq + 1));
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

  static void check(boolean ok, String message) {
    if (!ok) {
      throw new IllegalStateException(message);
    }
  }

  static String describe(Throwable e) {
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
    return ClientCheck.json(s);
  }
}
