#!/usr/bin/env node
// kafkajs judges the idempotent producer and transactions.
//
// Usage: node eos_kafkajs.js --bootstrap HOST:PORT --topic NAME
//
// (1) An idempotent producer (`idempotent: true, maxInFlightRequests: 1`) writes N records over
//     3 partitions (partition i % 3, in sends of a few records each); a consumer reads them all
//     back: every record once, in order per partition, at the offset its send acknowledged.
// (2) A transactional producer commits A, aborts B and commits C (every send awaited before the
//     end, so B's records are in the log), staging group offsets in each; a read_committed
//     consumer (kafkajs's default) sees exactly A then C per partition, a readUncommitted one
//     A, B, C, and the group's offsets are A's and C's, never B's.
//
// Prints one JSON line, {"ok":true,...} or {"ok":false,"stage":...,"error":...}, last on stdout
// and exits non-zero on failure. kafkajs's own log goes to stderr. Run by
// tests/tests/kafkajs_exactly_once.rs.
'use strict'

const { Partitioners } = require('kafkajs')
const KAFKAJS_VERSION = require('kafkajs/package.json').version

const N = 300
const PER_SEND = 10
const PER_TXN = 30
const PARTITIONS = 3
const { STEP_MS, stage, expect, sleep, bounded, parseArgs, run, client } = require('./check')

async function createTopics(kafka, topics) {
  const admin = kafka.admin()
  await bounded(admin.connect(), 'admin connect')
  try {
    await bounded(
      admin.createTopics({
        topics: topics.map(topic => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })),
        waitForLeaders: true,
      }),
      'createTopics'
    )
  } finally {
    await admin.disconnect()
  }
}

/**
 * Reads `topic` from the beginning with a fresh group until `want` records or the deadline,
 * then a quiet second to catch anything beyond them. Returns {partition: [{offset, value}]}.
 */
async function readAll(kafka, topic, readUncommitted, want) {
  const groupId = `${topic}-${readUncommitted ? 'uncommitted' : 'committed'}-${process.pid}`
  const consumer = kafka.consumer({ groupId, readUncommitted, maxWaitTimeInMs: 500 })
  const byPartition = {}
  let count = 0
  await bounded(consumer.connect(), 'consumer connect')
  try {
    await bounded(consumer.subscribe({ topics: [topic], fromBeginning: true }), 'subscribe')
    await bounded(
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          ;(byPartition[partition] ||= []).push({
            offset: Number(message.offset),
            value: message.value.toString(),
          })
          count += 1
        },
      }),
      'consumer run'
    )
    const deadline = Date.now() + STEP_MS
    while (count < want && Date.now() < deadline) await sleep(100)
    await sleep(1000)
  } finally {
    await bounded(consumer.disconnect(), 'consumer disconnect')
  }
  return { byPartition, count }
}

function values(list) {
  return (list || []).map(r => r.value)
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b)
}

async function idempotent(kafka, topic) {
  stage('idempotent producer')
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await bounded(producer.connect(), 'producer connect')
  // value -> acknowledged offset
  const acked = new Map()
  try {
    for (let start = 0; start < N; start += PER_SEND) {
      const messages = []
      for (let i = start; i < Math.min(start + PER_SEND, N); i++) {
        messages.push({ value: String(i).padStart(6, '0'), partition: i % PARTITIONS })
      }
      const meta = await bounded(producer.send({ topic, acks: -1, messages }), `send ${start}`)
      for (const m of meta) {
        expect(m.errorCode === 0, `send ${start}: partition ${m.partition} error ${m.errorCode}`)
        const base = Number(m.baseOffset)
        messages
          .filter(msg => msg.partition === m.partition)
          .forEach((msg, k) => acked.set(msg.value, { partition: m.partition, offset: base + k }))
      }
    }
  } finally {
    await producer.disconnect()
  }
  expect(acked.size === N, `${acked.size} of ${N} records acknowledged`)

  stage('idempotent read back')
  const { byPartition, count } = await readAll(kafka, topic, true, N)
  expect(count === N, `read ${count} records, want ${N}`)
  for (let p = 0; p < PARTITIONS; p++) {
    const want = []
    for (let i = p; i < N; i += PARTITIONS) want.push(String(i).padStart(6, '0'))
    const got = values(byPartition[p])
    expect(same(got, want), `partition ${p}: read ${got.slice(0, 5)}... want ${want.slice(0, 5)}...`)
    for (const r of byPartition[p]) {
      const a = acked.get(r.value)
      expect(
        a.partition === p && a.offset === r.offset,
        `${r.value} read at ${p}@${r.offset}, acknowledged at ${a.partition}@${a.offset}`
      )
    }
  }
  return { records: N }
}

async function transactions(kafka, topic, transactionalId) {
  stage('transactions')
  const groupId = `${topic}-offsets`
  // What each transaction stages for the group: B's must never be seen.
  const staged = {
    a: [
      { partition: 0, offset: '10' },
      { partition: 1, offset: '10' },
    ],
    b: [
      { partition: 1, offset: '20' },
      { partition: 2, offset: '20' },
    ],
    c: [{ partition: 0, offset: '30' }],
  }
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await bounded(producer.connect(), 'transactional producer connect')
  try {
    for (const [name, commit] of [
      ['a', true],
      ['b', false],
      ['c', true],
    ]) {
      stage(`transaction ${name}`)
      const txn = await bounded(producer.transaction(), `begin ${name}`)
      // Two sends per transaction; each is awaited, so the records are written before the end.
      for (const half of [0, 1]) {
        const messages = []
        for (let i = half * (PER_TXN / 2); i < (half + 1) * (PER_TXN / 2); i++) {
          messages.push({
            key: name,
            value: `${name}-${String(i).padStart(3, '0')}`,
            partition: i % PARTITIONS,
          })
        }
        await bounded(txn.send({ topic, acks: -1, messages }), `send ${name}`)
      }
      await bounded(
        txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: staged[name] }] }),
        `sendOffsets ${name}`
      )
      await bounded(commit ? txn.commit() : txn.abort(), `${commit ? 'commit' : 'abort'} ${name}`)
    }
  } finally {
    await producer.disconnect()
  }

  const wantIn = names => {
    const out = {}
    for (let p = 0; p < PARTITIONS; p++) {
      out[p] = []
      for (const name of names) {
        for (let i = p; i < PER_TXN; i += PARTITIONS) {
          out[p].push(`${name}-${String(i).padStart(3, '0')}`)
        }
      }
    }
    return out
  }

  stage('read_committed')
  const committed = await readAll(kafka, topic, false, 2 * PER_TXN)
  const wantCommitted = wantIn(['a', 'c'])
  for (let p = 0; p < PARTITIONS; p++) {
    const got = values(committed.byPartition[p])
    expect(same(got, wantCommitted[p]), `read_committed partition ${p}: ${got.join(' ')}`)
  }

  stage('read_uncommitted')
  const everything = await readAll(kafka, topic, true, 3 * PER_TXN)
  const wantAll = wantIn(['a', 'b', 'c'])
  for (let p = 0; p < PARTITIONS; p++) {
    const got = values(everything.byPartition[p])
    expect(same(got, wantAll[p]), `read_uncommitted partition ${p}: ${got.join(' ')}`)
  }

  stage('transactional offsets')
  // A's offsets, C's over them, none of B's. Kafka applies the markers after answering EndTxn,
  // so the committed offsets may settle a moment later.
  const wantOffsets = ['30', '10', '-1']
  const admin = kafka.admin()
  await bounded(admin.connect(), 'admin connect')
  let got = []
  try {
    const deadline = Date.now() + STEP_MS
    for (;;) {
      const [entry] = await bounded(admin.fetchOffsets({ groupId, topics: [topic] }), 'fetchOffsets')
      got = [...entry.partitions].sort((x, y) => x.partition - y.partition).map(x => x.offset)
      if (same(got, wantOffsets) || Date.now() > deadline) break
      await sleep(200)
    }
  } finally {
    await admin.disconnect()
  }
  expect(same(got, wantOffsets), `group offsets ${got.join(',')}, want ${wantOffsets.join(',')}`)
  return { transactions: 3, per_transaction: PER_TXN }
}

async function main() {
  const args = parseArgs(
    process.argv.slice(2),
    ['bootstrap', 'topic'],
    'eos_kafkajs.js --bootstrap HOST:PORT --topic NAME'
  )
  const kafka = client('tierlog-eos-kafkajs', args.bootstrap)
  const idem = `${args.topic}-idem`
  const txn = `${args.topic}-txn`
  stage('create topics')
  await createTopics(kafka, [idem, txn])
  const one = await idempotent(kafka, idem)
  const two = await transactions(kafka, txn, `${args.topic}-tx`)
  stage('done')
  return { client: 'kafkajs', version: KAFKAJS_VERSION, ...one, ...two }
}

run(main)
