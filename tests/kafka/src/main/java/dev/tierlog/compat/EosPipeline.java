package dev.tierlog.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * An exactly-once consume-transform-produce loop, meant to be killed and restarted.
 *
 * <p>{@code --mode run}: a read_committed consumer in group G reads the input topic; for every
 * poll that returns records, one transaction writes one output record per input record to the
 * same partition number of the output topic (key kept, value {@code <input value>|<input
 * partition>|<input offset>}) and sends the consumed positions to the transaction. It prints one
 * JSON line per step to stdout, flushed: {@code {"ev":"open","txn":k,"records":n}} once the
 * transaction's records are sent and flushed (then it waits {@code --hold-ms}, a window for a
 * kill to land inside an open transaction), {@code {"ev":"commit","txn":k,"records":n}} after
 * the commit. It runs until killed, or exits 0 after {@code --idle-exit-ms} without input while
 * it holds partitions (0: never) with a summary line. A restart with the same transactional.id fences the killed
 * instance and aborts its open transaction.
 *
 * <p>{@code --mode verify}: reads the output topic read_committed up to its LSO and checks that
 * every input record (each offset below the input's end, per partition) appears exactly once,
 * in input order per partition. Summary: {@code {"ok":true,"records":N}}.
 *
 * <p>Usage: {@code EosPipeline --bootstrap HOST:PORT --input IN --output OUT [--mode run|verify]
 * [--group G] [--transactional-id T] [--max-poll-records N] [--hold-ms MS] [--idle-exit-ms MS]
 * [--timeout-ms MS]}
 */
public final class EosPipeline {
  private String bootstrap;
  private String input;
  private String output;
  private String mode = "run";
  private String group = "eos-pipeline";
  private String transactionalId = "eos-pipeline-txn";
  private int maxPollRecords = 50;
  private long holdMs = 0;
  private long idleExitMs = 0;
  private long timeoutMs = 120_000;
  private String stage = "arguments";

  public static void main(String[] args) {
    EosPipeline pipeline = new EosPipeline();
    try {
      pipeline.parse(args);
      String summary = pipeline.mode.equals("verify") ? pipeline.verify() : pipeline.run();
      System.out.println(summary);
      System.out.flush();
      System.exit(0);
    } catch (Throwable e) {
      String message = TxnCheck.describe(e);
      System.err.println("EosPipeline FAILED at stage " + pipeline.stage + ": " + message);
      e.printStackTrace(System.err);
      System.out.println("{\"ok\":false,\"stage\":" + TxnCheck.json(pipeline.stage)
          + ",\"error\":" + TxnCheck.json(message) + "}");
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
        case "--input" -> input = value;
        case "--output" -> output = value;
        case "--mode" -> mode = value;
        case "--group" -> group = value;
        case "--transactional-id" -> transactionalId = value;
        case "--max-poll-records" -> maxPollRecords = Integer.parseInt(value);
        case "--hold-ms" -> holdMs = Long.parseLong(value);
        case "--idle-exit-ms" -> idleExitMs = Long.parseLong(value);
        case "--timeout-ms" -> timeoutMs = Long.parseLong(value);
        default -> throw new IllegalArgumentException("unknown flag " + flag);
      }
    }
    if (bootstrap == null || input == null || output == null) {
      throw new IllegalArgumentException("--bootstrap, --input and --output are required");
    }
  }

  private Properties consumerProps() {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, IsolationLevel.READ_COMMITTED.toString());
    props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.toString(maxPollRecords));
    return props;
  }

  private String run() {
    Properties cprops = consumerProps();
    cprops.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    // The broker's minimum (group.min.session.timeout.ms): a killed instance leaves the group
    // 6 s after its death instead of 45.
    cprops.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
    cprops.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
    Properties pprops = new Properties();
    pprops.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    pprops.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    pprops.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    pprops.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
    int txns = 0;
    int aborted = 0;
    long processed = 0;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cprops);
        KafkaProducer<String, String> producer = new KafkaProducer<>(pprops)) {
      stage = "initTransactions";
      producer.initTransactions();
      consumer.subscribe(List.of(input));
      long idleSince = System.nanoTime();
      while (true) {
        stage = "poll";
        ConsumerRecords<String, String> batch = consumer.poll(Duration.ofMillis(200));
        if (batch.isEmpty()) {
          if (consumer.assignment().isEmpty()) {
            // Not idle, waiting for the group: a killed predecessor holds the partitions until
            // its session times out.
            idleSince = System.nanoTime();
          } else if (idleExitMs > 0
              && System.nanoTime() - idleSince > TimeUnit.MILLISECONDS.toNanos(idleExitMs)) {
            break;
          }
          continue;
        }
        idleSince = System.nanoTime();
        stage = "transaction " + txns;
        try {
          producer.beginTransaction();
          Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
          for (ConsumerRecord<String, String> r : batch) {
            String value = r.value() + "|" + r.partition() + "|" + r.offset();
            producer.send(new ProducerRecord<>(output, r.partition(), r.key(), value));
            next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
          }
          producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
          producer.flush();
          event("open", txns, batch.count());
          if (holdMs > 0) {
            Thread.sleep(holdMs);
          }
          producer.commitTransaction();
          event("commit", txns, batch.count());
          processed += batch.count();
          txns++;
        } catch (ProducerFencedException | InvalidProducerEpochException e) {
          // Another instance took over the transactional.id: this one must stop.
          throw e;
        } catch (KafkaException e) {
          System.err.println("transaction " + txns + " failed, aborting: " + TxnCheck.describe(e));
          producer.abortTransaction();
          aborted++;
          rewind(consumer);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
    return "{\"ok\":true,\"mode\":\"run\",\"txns\":" + txns + ",\"aborted\":" + aborted
        + ",\"records\":" + processed + "}";
  }

  /** After an abort: back to the group's committed positions (the beginning where none). */
  private static void rewind(KafkaConsumer<String, String> consumer) {
    Set<TopicPartition> assigned = consumer.assignment();
    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assigned);
    for (TopicPartition tp : assigned) {
      OffsetAndMetadata om = committed.get(tp);
      if (om == null) {
        consumer.seekToBeginning(List.of(tp));
      } else {
        consumer.seek(tp, om.offset());
      }
    }
  }

  private static void event(String ev, int txn, int records) {
    System.out.println("{\"ev\":\"" + ev + "\",\"txn\":" + txn + ",\"records\":" + records + "}");
    System.out.flush();
  }

  private String verify() {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps())) {
      stage = "input ends";
      List<TopicPartition> inTps = new ArrayList<>();
      consumer.partitionsFor(input).forEach(i -> inTps.add(new TopicPartition(input, i.partition())));
      Map<TopicPartition, Long> inputEnds = consumer.endOffsets(inTps);
      List<TopicPartition> outTps = new ArrayList<>();
      consumer.partitionsFor(output).forEach(i -> outTps.add(new TopicPartition(output, i.partition())));
      stage = "read the output";
      Map<TopicPartition, Long> lso = consumer.endOffsets(outTps);
      consumer.assign(outTps);
      consumer.seekToBeginning(outTps);
      Set<String> seen = new HashSet<>();
      Map<Integer, Long> lastInputOffset = new HashMap<>();
      long records = 0;
      while (true) {
        boolean done = true;
        for (TopicPartition tp : outTps) {
          done &= consumer.position(tp) >= lso.get(tp);
        }
        if (done) {
          break;
        }
        TxnCheck.check(System.nanoTime() < deadline, "deadline passed reading the output");
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
          records++;
          String[] parts = r.value().split("\\|");
          TxnCheck.check(parts.length == 3, "unparsable output " + r.value());
          int p = Integer.parseInt(parts[1]);
          long offset = Long.parseLong(parts[2]);
          String source = p + "@" + offset;
          TxnCheck.check(seen.add(source),
              "input " + source + " appears twice in the output (again at " + r.partition() + "@"
                  + r.offset() + ")");
          TxnCheck.check(r.partition() == p, "input " + source + " written to partition " + r.partition());
          Long last = lastInputOffset.put(p, offset);
          TxnCheck.check(last == null || last < offset,
              "input " + source + " after input offset " + last + " in output partition " + p);
        }
      }
      long expected = 0;
      for (TopicPartition tp : inTps) {
        for (long o = 0; o < inputEnds.get(tp); o++) {
          expected++;
          TxnCheck.check(seen.contains(tp.partition() + "@" + o),
              "input " + tp.partition() + "@" + o + " is missing from the output");
        }
      }
      TxnCheck.check(records == expected, "output holds " + records + " records, want " + expected);
      return "{\"ok\":true,\"mode\":\"verify\",\"records\":" + records + "}";
    }
  }
}
