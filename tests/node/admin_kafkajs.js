#!/usr/bin/env node
// kafkajs changes topic configs: its admin's `alterConfigs` sends the legacy AlterConfigs API
// (key 33), which replaces the whole set of a topic's overrides.
//
// Usage: node admin_kafkajs.js --bootstrap HOST:PORT --topic NAME
//
// (1) `alterConfigs` sets retention.ms and cleanup.policy: `describeConfigs` shows both as
//     topic overrides (source DYNAMIC_TOPIC_CONFIG).
// (2) `alterConfigs` of retention.ms alone: cleanup.policy reverts to its default (`delete`).
// (3) `validateOnly` changes nothing; an invalid value is refused with INVALID_CONFIG and
//     changes nothing.
//
// Prints its verdict as check.js does. Run by tests/tests/kafkajs_admin.rs.
'use strict'

const { ConfigResourceTypes } = require('kafkajs')
const { STEP_MS, stage, expect, sleep, bounded, parseArgs, run, client } = require('./check')

const DYNAMIC_TOPIC_CONFIG = 1
const NAMES = ['retention.ms', 'cleanup.policy', 'max.message.bytes']

/** The topic's configs in NAMES: name -> [value, source]. */
async function describe(admin, topic) {
  const r = await bounded(
    admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: NAMES }],
    }),
    'describeConfigs'
  )
  const out = {}
  for (const e of r.resources[0].configEntries) out[e.configName] = [e.configValue, e.configSource]
  return out
}

/** Waits until the topic's configs show every `[name, value, isOverride]` of `want`. */
async function awaitConfigs(admin, topic, want) {
  const deadline = Date.now() + STEP_MS
  let got
  for (;;) {
    got = await describe(admin, topic)
    const ok = want.every(
      ([name, value, override]) =>
        got[name] && got[name][0] === value && (got[name][1] === DYNAMIC_TOPIC_CONFIG) === override
    )
    if (ok) return got
    if (Date.now() > deadline) break
    await sleep(100)
  }
  throw new Error(`configs ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}

function alter(admin, topic, entries, validateOnly = false) {
  return bounded(
    admin.alterConfigs({
      validateOnly,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: entries.map(([name, value]) => ({ name, value })),
        },
      ],
    }),
    `alterConfigs ${JSON.stringify(entries)}`
  )
}

async function main() {
  const args = parseArgs(
    process.argv.slice(2),
    ['bootstrap', 'topic'],
    'admin_kafkajs.js --bootstrap HOST:PORT --topic NAME'
  )
  const topic = args.topic
  const kafka = client('tierlog-admin-kafkajs', args.bootstrap)
  const admin = kafka.admin()
  await bounded(admin.connect(), 'admin connect')
  try {
    stage('create topic')
    await bounded(
      admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      }),
      'createTopics'
    )

    stage('set two configs')
    const first = await alter(admin, topic, [
      ['retention.ms', '3600000'],
      ['cleanup.policy', 'compact'],
    ])
    expect(
      first.resources.length === 1 && first.resources[0].errorCode === 0,
      `alterConfigs answered ${JSON.stringify(first.resources)}`
    )
    await awaitConfigs(admin, topic, [
      ['retention.ms', '3600000', true],
      ['cleanup.policy', 'compact', true],
    ])

    stage('set one, the other reverts')
    await alter(admin, topic, [['retention.ms', '7200000']])
    await awaitConfigs(admin, topic, [
      ['retention.ms', '7200000', true],
      ['cleanup.policy', 'delete', false],
    ])

    stage('validate only')
    await alter(admin, topic, [['max.message.bytes', '2048']], true)

    stage('invalid value')
    let refused = null
    try {
      await alter(admin, topic, [['retention.ms', 'soon']])
    } catch (e) {
      refused = e.type
    }
    expect(refused === 'INVALID_CONFIG', `an invalid retention.ms got ${refused}`)
    // Neither the validate-only nor the refused request changed anything.
    const after = await awaitConfigs(admin, topic, [
      ['retention.ms', '7200000', true],
      ['cleanup.policy', 'delete', false],
    ])
    expect(
      after['max.message.bytes'][1] !== DYNAMIC_TOPIC_CONFIG,
      `validateOnly set max.message.bytes: ${JSON.stringify(after)}`
    )
    stage('done')
    return { client: 'kafkajs', configs: after }
  } finally {
    await admin.disconnect()
  }
}

run(main)
