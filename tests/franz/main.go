// Command franz-check judges a Kafka-compatible broker with franz-go (kgo) and its admin
// client (kadm), the way a Go service would use them: defaults unless a flag says otherwise.
//
// One round trip:
//
//  1. kadm: broker metadata (a cluster id, at least one broker), CreateTopic with the broker's
//     default replication factor, Metadata for the topic (every partition has a leader among
//     the brokers), ListStartOffsets/ListEndOffsets (0 and 0).
//  2. kgo producer: -count keyed records with ProduceSync; per partition the offsets must be
//     0, 1, 2, ... in produce order. With -idempotent (the default) franz-go asks for a producer
//     id; the summary reports the id the records were written with (-1: none).
//  3. kadm: ListStartOffsets 0 and ListEndOffsets = records acknowledged, per partition.
//  4. kgo consumer in group -group (ConsumeTopics, auto commit off): every record exactly once,
//     at the partition and offset the producer was told, with its key and value; then
//     DescribeGroups (Stable, one member) and CommitUncommittedOffsets.
//  5. kadm FetchOffsets: the group's committed offset of each partition is its end.
//
// It prints one JSON line to stdout ({"ok":true,...} or {"ok":false,"stage":...,"error":...})
// and exits 0 or 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	bootstrap  string
	topic      string
	group      string
	count      int
	partitions int
	idempotent bool
	timeout    time.Duration
	verbose    bool
}

// summary is the JSON line printed at the end.
type summary struct {
	OK         bool            `json:"ok"`
	Stage      string          `json:"stage,omitempty"`
	Error      string          `json:"error,omitempty"`
	Topic      string          `json:"topic"`
	Group      string          `json:"group"`
	ClusterID  string          `json:"cluster_id,omitempty"`
	Brokers    int             `json:"brokers"`
	Idempotent bool            `json:"idempotent"`
	ProducerID int64           `json:"producer_id"`
	Produced   int             `json:"produced"`
	Consumed   int             `json:"consumed"`
	EndOffsets map[int32]int64 `json:"end_offsets,omitempty"`
	Committed  map[int32]int64 `json:"committed,omitempty"`
	GroupState string          `json:"group_state,omitempty"`
	ElapsedMs  int64           `json:"elapsed_ms"`
}

// sent is where the producer was told a record went.
type sent struct {
	value     string
	partition int32
	offset    int64
}

func main() {
	var o options
	flag.StringVar(&o.bootstrap, "bootstrap", "", "broker host:port (required)")
	flag.StringVar(&o.topic, "topic", "franz-check", "topic to create and use")
	flag.StringVar(&o.group, "group", "franz-check-group", "consumer group")
	flag.IntVar(&o.count, "count", 300, "records to produce")
	flag.IntVar(&o.partitions, "partitions", 3, "partitions of the topic")
	flag.BoolVar(&o.idempotent, "idempotent", true, "idempotent producer (franz-go's default); false calls kgo.DisableIdempotentWrite()")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "deadline for the whole check")
	flag.BoolVar(&o.verbose, "verbose", false, "franz-go debug logging to stderr")
	flag.Parse()

	s := &summary{Topic: o.topic, Group: o.group, Idempotent: o.idempotent, ProducerID: -1}
	started := time.Now()
	stage, err := run(o, s)
	s.ElapsedMs = time.Since(started).Milliseconds()
	if err != nil {
		s.OK = false
		s.Stage = stage
		s.Error = err.Error()
		fmt.Fprintf(os.Stderr, "franz-check FAILED at stage %s: %v\n", stage, err)
	} else {
		s.OK = true
	}
	line, merr := json.Marshal(s)
	if merr != nil {
		fmt.Fprintf(os.Stderr, "franz-check: encoding the summary: %v\n", merr)
		os.Exit(1)
	}
	fmt.Println(string(line))
	if err != nil {
		os.Exit(1)
	}
}

func key(i int) string   { return fmt.Sprintf("key-%d", i) }
func value(i int) string { return fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%17)) }

// run performs the check; on failure it returns the stage that failed and why.
func run(o options, s *summary) (string, error) {
	if o.bootstrap == "" {
		return "arguments", errors.New("-bootstrap host:port is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	common := []kgo.Opt{kgo.SeedBrokers(o.bootstrap)}
	if o.verbose {
		common = append(common, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil)))
	}

	adminClient, err := kgo.NewClient(common...)
	if err != nil {
		return "admin client", err
	}
	defer adminClient.Close()
	admin := kadm.NewClient(adminClient)

	// 1. Cluster and topic.
	meta, err := admin.BrokerMetadata(ctx)
	if err != nil {
		return "broker metadata", err
	}
	s.ClusterID = meta.Cluster
	s.Brokers = len(meta.Brokers)
	if meta.Cluster == "" {
		return "broker metadata", errors.New("no cluster id")
	}
	if len(meta.Brokers) == 0 {
		return "broker metadata", errors.New("no brokers")
	}
	created, err := admin.CreateTopic(ctx, int32(o.partitions), -1, nil, o.topic)
	if err != nil {
		return "create topic", fmt.Errorf("%w (%s)", err, created.ErrMessage)
	}
	if created.NumPartitions != int32(o.partitions) {
		return "create topic", fmt.Errorf("response says %d partitions, want %d", created.NumPartitions, o.partitions)
	}
	if err := checkLeaders(ctx, admin, o, meta.Brokers); err != nil {
		return "topic metadata", err
	}
	if err := checkOffsets(ctx, admin, o, make(map[int32]int64)); err != nil {
		return "list offsets (empty topic)", err
	}

	// 2. Produce.
	produced, ends, err := produce(ctx, common, o, s)
	if err != nil {
		return "produce", err
	}
	s.Produced = len(produced)
	s.EndOffsets = ends

	// 3. Offsets after producing.
	if err := checkOffsets(ctx, admin, o, ends); err != nil {
		return "list offsets (after produce)", err
	}

	// 4. Consume in a group and commit.
	if stage, err := consume(ctx, common, admin, o, produced, ends, s); err != nil {
		return stage, err
	}

	// 5. The committed offsets, as an admin sees them.
	fetched, err := admin.FetchOffsets(ctx, o.group)
	if err != nil {
		return "fetch offsets", err
	}
	if err := fetched.Error(); err != nil {
		return "fetch offsets", err
	}
	s.Committed = make(map[int32]int64)
	for p := int32(0); p < int32(o.partitions); p++ {
		r, ok := fetched.Lookup(o.topic, p)
		if !ok {
			return "fetch offsets", fmt.Errorf("no committed offset for partition %d (got %v)", p, fetched)
		}
		s.Committed[p] = r.At
		if r.At != ends[p] {
			return "fetch offsets", fmt.Errorf("partition %d committed %d, want %d", p, r.At, ends[p])
		}
	}
	return "", nil
}

// checkLeaders waits (within ctx) until Metadata shows every partition with a leader among the
// brokers: right after CreateTopics a broker may still be electing them.
func checkLeaders(ctx context.Context, admin *kadm.Client, o options, brokers kadm.BrokerDetails) error {
	known := make(map[int32]bool)
	for _, b := range brokers {
		known[b.NodeID] = true
	}
	for {
		last := ""
		m, err := admin.Metadata(ctx, o.topic)
		if err != nil {
			last = err.Error()
		} else if t, ok := m.Topics[o.topic]; !ok {
			last = "topic missing from metadata"
		} else if t.Err != nil {
			last = t.Err.Error()
		} else if len(t.Partitions) != o.partitions {
			return fmt.Errorf("%d partitions, want %d", len(t.Partitions), o.partitions)
		} else {
			for p := int32(0); p < int32(o.partitions); p++ {
				d, ok := t.Partitions[p]
				switch {
				case !ok:
					return fmt.Errorf("partition %d missing (got %v)", p, t.Partitions.Numbers())
				case d.Err != nil:
					last = fmt.Sprintf("partition %d: %v", p, d.Err)
				case !known[d.Leader]:
					last = fmt.Sprintf("partition %d: leader %d not among brokers", p, d.Leader)
				}
				if last != "" {
					break
				}
			}
			if last == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deadline passed: %s", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func checkOffsets(ctx context.Context, admin *kadm.Client, o options, ends map[int32]int64) error {
	starts, err := admin.ListStartOffsets(ctx, o.topic)
	if err != nil {
		return err
	}
	latest, err := admin.ListEndOffsets(ctx, o.topic)
	if err != nil {
		return err
	}
	if err := starts.Error(); err != nil {
		return fmt.Errorf("start offsets: %w", err)
	}
	if err := latest.Error(); err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	for p := int32(0); p < int32(o.partitions); p++ {
		lo, ok := starts.Lookup(o.topic, p)
		if !ok || lo.Offset != 0 {
			return fmt.Errorf("start offset of partition %d is %+v, want 0", p, lo)
		}
		hi, ok := latest.Lookup(o.topic, p)
		if !ok || hi.Offset != ends[p] {
			return fmt.Errorf("end offset of partition %d is %+v, want %d", p, hi, ends[p])
		}
	}
	return nil
}

func produce(ctx context.Context, common []kgo.Opt, o options, s *summary) (map[string]sent, map[int32]int64, error) {
	opts := append([]kgo.Opt{kgo.DefaultProduceTopic(o.topic)}, common...)
	if !o.idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	producer, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, err
	}
	defer producer.Close()
	records := make([]*kgo.Record, o.count)
	for i := range records {
		records[i] = &kgo.Record{Key: []byte(key(i)), Value: []byte(value(i))}
	}
	results := producer.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		return nil, nil, err
	}
	// Results come back in completion order, not produce order.
	index := make(map[string]int, o.count)
	for i := range records {
		index[key(i)] = i
	}
	out := make(map[string]sent, o.count)
	ends := make(map[int32]int64)
	for p := int32(0); p < int32(o.partitions); p++ {
		ends[p] = 0 // every partition is in the summary, even one that got no record
	}
	byOffset := make(map[int32]map[int64]int)
	for _, r := range results {
		rec := r.Record
		i, ok := index[string(rec.Key)]
		if !ok {
			return nil, nil, fmt.Errorf("a result for unknown key %q", rec.Key)
		}
		p := rec.Partition
		if p < 0 || p >= int32(o.partitions) {
			return nil, nil, fmt.Errorf("record %d acknowledged on partition %d", i, p)
		}
		if byOffset[p] == nil {
			byOffset[p] = make(map[int64]int)
		}
		if other, dup := byOffset[p][rec.Offset]; dup {
			return nil, nil, fmt.Errorf("records %d and %d both acknowledged at %d@%d", other, i, p, rec.Offset)
		}
		byOffset[p][rec.Offset] = i
		ends[p]++
		out[key(i)] = sent{value: value(i), partition: p, offset: rec.Offset}
		if i == 0 {
			s.ProducerID = rec.ProducerID
		}
	}
	if len(out) != o.count {
		return nil, nil, fmt.Errorf("%d distinct records acknowledged, want %d", len(out), o.count)
	}
	// One producer keeps each partition's records in order: per partition the offsets are
	// 0, 1, 2, ... and follow produce order.
	for p, offsets := range byOffset {
		last := -1
		for off := int64(0); off < ends[p]; off++ {
			i, ok := offsets[off]
			if !ok {
				return nil, nil, fmt.Errorf("partition %d: offsets not contiguous from 0 (no record at %d of %d)", p, off, ends[p])
			}
			if i < last {
				return nil, nil, fmt.Errorf("partition %d: record %d at offset %d comes after record %d", p, i, off, last)
			}
			last = i
		}
	}
	return out, ends, nil
}

func consume(
	ctx context.Context,
	common []kgo.Opt,
	admin *kadm.Client,
	o options,
	produced map[string]sent,
	ends map[int32]int64,
	s *summary,
) (string, error) {
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	}, common...)
	consumer, err := kgo.NewClient(opts...)
	if err != nil {
		return "consumer client", err
	}
	defer consumer.Close()
	seen := make(map[string]bool, len(produced))
	for len(seen) < len(produced) {
		pollCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fetches := consumer.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return "consume", fmt.Errorf("deadline passed with %d of %d records seen", len(seen), len(produced))
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && fetchErr == nil {
				fetchErr = fmt.Errorf("fetch %s-%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return "consume", fetchErr
		}
		var bad error
		fetches.EachRecord(func(r *kgo.Record) {
			s.Consumed++
			if bad != nil {
				return
			}
			k := string(r.Key)
			want, ok := produced[k]
			switch {
			case r.Topic != o.topic:
				bad = fmt.Errorf("record from topic %s", r.Topic)
			case !ok:
				bad = fmt.Errorf("unexpected key %q at %d@%d", k, r.Partition, r.Offset)
			case string(r.Value) != want.value:
				bad = fmt.Errorf("key %s has value %q, want %q", k, r.Value, want.value)
			case r.Partition != want.partition || r.Offset != want.offset:
				bad = fmt.Errorf("key %s at %d@%d, but produced to %d@%d", k, r.Partition, r.Offset, want.partition, want.offset)
			case seen[k]:
				bad = fmt.Errorf("key %s delivered twice (%d@%d)", k, r.Partition, r.Offset)
			}
			seen[k] = true
		})
		if bad != nil {
			return "consume", bad
		}
	}

	groups, err := admin.DescribeGroups(ctx, o.group)
	if err != nil {
		return "describe groups", err
	}
	g, ok := groups[o.group]
	switch {
	case !ok:
		return "describe groups", fmt.Errorf("group %s missing", o.group)
	case g.Err != nil:
		return "describe groups", g.Err
	case g.State != "Stable":
		return "describe groups", fmt.Errorf("state %s, want Stable", g.State)
	case len(g.Members) != 1:
		return "describe groups", fmt.Errorf("%d members, want 1", len(g.Members))
	}
	s.GroupState = g.State

	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		return "commit", err
	}
	// Leave the group cleanly before the admin looks at its offsets.
	consumer.Close()
	return "", nil
}
