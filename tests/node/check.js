// What every kafkajs check program shares: named stages with their timings, bounded waits,
// `--name value` arguments, kafkajs's log on stderr, and one JSON verdict as the last line of
// stdout ({"ok":true,...} or {"ok":false,"stage":...,"error":...}; non-zero exit on failure),
// which the Rust tests read (tierlog_tests::programs::kafkajs_check).
'use strict'

const { Kafka, logLevel } = require('kafkajs')

// Every wait is bounded: one operation, one read, and the whole run.
const STEP_MS = 60000
const TOTAL_MS = 240000

let STAGE = 'start'
let stageStarted = Date.now()
// Milliseconds each stage took, reported in the verdict.
const TIMINGS = {}

function stage(name) {
  const now = Date.now()
  TIMINGS[STAGE] = now - stageStarted
  STAGE = name
  stageStarted = now
  process.stderr.write(`stage: ${name}\n`)
}

function expect(cond, what) {
  if (!cond) throw new Error(what)
}

function verdict(obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code))
}

function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** `promise`, or a rejection naming `what` once `ms` have passed. */
function bounded(promise, what, ms = STEP_MS) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** `--name value` pairs; `required` names must be there (`usage` explains them). */
function parseArgs(argv, required, usage) {
  const args = {}
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]
    const value = argv[i + 1]
    if (!name.startsWith('--') || value === undefined) throw new Error(`bad argument ${name}`)
    args[name.slice(2)] = value
  }
  expect(required.every(r => args[r]), `usage: ${usage}`)
  return args
}

// kafkajs logs through console.info (stdout) by default; stdout carries the verdict only.
const stderrLog = () => ({ namespace, level, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`kafkajs ${namespace} ${level}: ${message} ${JSON.stringify(extra)}\n`)
}

/** A kafkajs client of `bootstrap` logging warnings to stderr. */
function client(clientId, bootstrap) {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator: stderrLog,
    connectionTimeout: 10000,
    requestTimeout: 30000,
  })
}

/** Runs `main` under the whole-run watchdog and prints its verdict. */
function run(main) {
  const watchdog = setTimeout(() => {
    verdict({ ok: false, stage: STAGE, error: `no verdict within ${TOTAL_MS} ms` }, 1)
  }, TOTAL_MS)
  main().then(
    summary => {
      clearTimeout(watchdog)
      verdict({ ok: true, ...summary, ms: TIMINGS }, 0)
    },
    err => {
      clearTimeout(watchdog)
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`)
      verdict({ ok: false, stage: STAGE, error: String(err && err.message ? err.message : err) }, 1)
    }
  )
}

module.exports = { STEP_MS, stage, expect, sleep, bounded, parseArgs, run, client }
