package dev.tierlog.compat;

import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Kafka Streams' word count against a broker: lines from the input topic, split into lowercase
 * words, re-keyed by word (repartition topic {@code <app id>-words-repartition}), counted in the
 * state store {@code counts} (changelog topic {@code <app id>-counts-changelog}, compacted), and
 * every count update written to the output topic as (word, Long).
 *
 * <p>The program also watches its own output with a plain consumer ({@code read_committed}, so
 * under exactly-once it sees only committed counts; assigned every partition, in no group, so a
 * killed instance's watcher never holds up a restarted one's) and stops once the latest count of
 * every expected word equals the expected count, or fails at the deadline with what it saw. A
 * Streams thread dying (or the client reaching ERROR) fails the run at once.
 *
 * <p>Prints one JSON line to stdout, {@code {"ok":true,...,"counts":{...}}} and exits 0, or
 * {@code {"ok":false,"error":"...","counts":{...}}} and exits 1.
 *
 * <p>Usage: {@code WordCount --bootstrap HOST:PORT --input T --output T --expect word=N,word=N
 * [--app-id ID] [--guarantee at_least_once|exactly_once_v2] [--state-dir DIR] [--timeout-ms
 * MS] [--streams-prop K=V]...}
 */
public final class WordCount {
  public static void main(String[] args) {
    String bootstrap = null;
    String appId = "tierlog-word-count";
    String input = "word-count-input";
    String output = "word-count-output";
    String guarantee = StreamsConfig.AT_LEAST_ONCE;
    String stateDir = null;
    long timeoutMs = 120_000;
    Map<String, Long> expected = new TreeMap<>();
    Properties extra = new Properties();
    try {
      for (int i = 0; i < args.length; i++) {
        String flag = args[i];
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException("missing value after " + flag);
        }
        String value = args[++i];
        switch (flag) {
          case "--bootstrap" -> bootstrap = value;
          case "--app-id" -> appId = value;
          case "--input" -> input = value;
          case "--output" -> output = value;
          case "--guarantee" -> guarantee = value;
          case "--state-dir" -> stateDir = value;
          case "--timeout-ms" -> timeoutMs = Long.parseLong(value);
          case "--expect" -> {
            for (String pair : value.split(",")) {
              String[] kv = pair.split("=", 2);
              expected.put(kv[0], Long.parseLong(kv[1]));
            }
          }
          case "--streams-prop" -> {
            int eq = value.indexOf('=');
            if (eq <= 0) {
              throw new IllegalArgumentException("expected KEY=VALUE, got " + value);
            }
            extra.setProperty(value.substring(0, eq), value.substring(eq + 1));
          }
          default -> throw new IllegalArgumentException("unknown flag " + flag);
        }
      }
      if (bootstrap == null || expected.isEmpty()) {
        throw new IllegalArgumentException("--bootstrap and --expect are required");
      }
    } catch (RuntimeException e) {
      fail("arguments: " + e.getMessage(), Map.of());
      return;
    }

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
    // Small commit interval and no record cache: count updates reach the output promptly.
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    if (stateDir != null) {
      props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    }
    props.putAll(extra);

    StreamsBuilder builder = new StreamsBuilder();
    KTable<String, Long> counts =
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
            .filter((key, word) -> !word.isEmpty())
            .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
            .count(Named.as("count"), Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"));
    counts.toStream().to(output, Produced.with(Serdes.String(), Serdes.Long()));

    AtomicReference<Throwable> streamsError = new AtomicReference<>();
    Map<String, Long> latest = new TreeMap<>();
    long started = System.nanoTime();
    long deadline = started + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    streams.setUncaughtExceptionHandler(
        e -> {
          streamsError.compareAndSet(null, e);
          return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.ERROR) {
            streamsError.compareAndSet(
                null, new IllegalStateException("Kafka Streams went from " + before + " to ERROR"));
          }
        });

    Properties watch = new Properties();
    watch.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    watch.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    watch.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    watch.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    int updates = 0;
    String failure = null;
    try (KafkaConsumer<String, Long> consumer =
        new KafkaConsumer<>(watch, new StringDeserializer(), new LongDeserializer())) {
      streams.start();
      consumer.assign(
          consumer.partitionsFor(output).stream()
              .map(p -> new TopicPartition(p.topic(), p.partition()))
              .toList());
      while (true) {
        Throwable error = streamsError.get();
        if (error != null) {
          failure = "kafka streams failed: " + chain(error);
          break;
        }
        if (latest.entrySet().containsAll(expected.entrySet())) {
          break;
        }
        if (System.nanoTime() >= deadline) {
          failure = "deadline of " + timeoutMs + " ms passed; streams state " + streams.state()
              + ", " + updates + " count updates seen";
          break;
        }
        for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
          updates++;
          latest.put(r.key(), r.value());
        }
      }
    } catch (RuntimeException e) {
      failure = "watching " + output + ": " + chain(e);
    } finally {
      streams.close(Duration.ofSeconds(10));
    }
    // Counts never overshoot: more than expected means a line was counted twice.
    for (Map.Entry<String, Long> e : latest.entrySet()) {
      Long want = expected.get(e.getKey());
      if (failure == null && (want == null || e.getValue() > want)) {
        failure = "word " + e.getKey() + " counted " + e.getValue() + ", want " + want;
      }
    }
    if (failure != null) {
      fail(failure, latest);
      return;
    }
    long elapsedMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
    System.out.println("{\"ok\":true,\"guarantee\":" + ClientCheck.json(guarantee) + ",\"updates\":"
        + updates + ",\"elapsed_ms\":" + elapsedMs + ",\"counts\":" + countsJson(latest) + "}");
    System.out.flush();
    System.exit(0);
  }

  private static void fail(String message, Map<String, Long> counts) {
    System.err.println("WordCount FAILED: " + message);
    System.out.println("{\"ok\":false,\"error\":" + ClientCheck.json(message) + ",\"counts\":"
        + countsJson(counts) + "}");
    System.out.flush();
    System.exit(1);
  }

  private static String countsJson(Map<String, Long> counts) {
    StringBuilder out = new StringBuilder("{");
    for (Map.Entry<String, Long> e : counts.entrySet()) {
      out.append(out.length() > 1 ? "," : "").append(ClientCheck.json(e.getKey())).append(':')
          .append(e.getValue());
    }
    return out.append('}').toString();
  }

  private static String chain(Throwable e) {
    StringBuilder out = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      out.append(out.length() > 0 ? ": caused by " : "")
          .append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
      if (t.getCause() == t) {
        break;
      }
    }
    return out.toString();
  }
}
