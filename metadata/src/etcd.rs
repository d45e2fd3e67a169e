//! [`EtcdStore`]: the cluster backend, over `etcd-client`.
//!
//! # Lifecycle
//!
//! [`EtcdStore::connect`] builds a client for the endpoints (one gRPC channel balanced across
//! them) and proves etcd answers by reading the current revision, all within
//! [`EtcdOptions::connect_timeout`]; an etcd that does not answer fails with
//! [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable). Every later call is one etcd
//! request (a list may be several pages of one snapshot), bounded by
//! [`EtcdOptions::request_timeout`]: the client otherwise waits forever for an endpoint to
//! come back. Dropping the store ends its watch streams.
//!
//! # Mapping
//!
//! - Keys are namespaced: the URL's prefix (e.g. `/prod`) is put in front of every key and
//!   stripped from every answer. The namespace is a plain byte prefix, as etcd's own
//!   `--namespace` is, so `/prod` and `/prod2` overlap: give deployments sharing an etcd
//!   prefixes that are not prefixes of one another.
//! - Revisions are etcd's (a new cluster starts at 1; every client's writes count).
//! - `txn` is one etcd Txn. [`Precondition::Absent`] compares `create_revision == 0`;
//!   [`Precondition::ModRevision`] compares `mod_revision`; `DeletePrefix` is a range delete.
//!   A failed compare is `succeeded: false`, as in etcd. Transactions are validated here first
//!   (the same rules as the local stores), so etcd's own rejections are rare; one it still
//!   rejects is a transaction with more ops than its `--max-txn-ops` (default 128):
//!   [`ErrorKind::Invalid`](crate::ErrorKind::Invalid). Raise that flag on clusters that commit
//!   large batches.
//! - Leases are etcd leases (TTL in whole seconds; etcd raises tiny TTLs to its minimum).
//!   `keep_alive` opens a keep-alive stream for one exchange.
//! - Watches are etcd watches with progress notifications. When the stream breaks (etcd
//!   restarted, a network blip), the watch is re-created from the revision after the last one
//!   delivered, retrying with backoff for [`EtcdOptions::watch_reconnect_timeout`]; after that
//!   the stream yields one `Unavailable` error and ends. A compacted start revision yields
//!   [`ErrorKind::Compacted`](crate::ErrorKind::Compacted).
//!
//! # TLS
//!
//! With [`EtcdOptions::tls`] on, the endpoints are dialled as `https://` (rustls with
//! aws-lc-rs): etcd's certificate must chain to the given CA file and name the endpoint's host,
//! and a client certificate is presented when one is given (etcd's `--client-cert-auth`). The
//! files are read once, at connect.
//!
//! Errors: gRPC `Unavailable`/`DeadlineExceeded` and transport failures are `Unavailable`;
//! see `error.rs` for the full table.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Certificate, Client, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::apply::validate;
use crate::error::{Error, ErrorKind, Result};
use crate::local::ttl_seconds;
use crate::store::{
    Compare, KeyValue, LeaseId, MetadataStore, Op, Precondition, TxnResult, WatchEvent, WatchStream,
};
use crate::url::EtcdTls;

/// Keys per page when listing: bounds each response well under gRPC's 4 MiB default.
const LIST_PAGE: i64 = 500;
/// HTTP/2 pings on the connection, so a dead etcd (or a dead network path) is noticed by
/// streams that are otherwise silent (watches).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer accepted (a page of big values).
const MAX_DECODING_BYTES: usize = 64 * 1024 * 1024;

/// Timeouts of an [`EtcdStore`]. Plain data; the defaults suit a LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// How long [`EtcdStore::connect`] may take, first answer included. Longer rides out a
    /// slow etcd start; shorter fails a misconfigured node sooner. Default 5 s.
    pub connect_timeout: Duration,
    /// Bound on each request. A write that times out may still have been applied (re-read).
    /// Default 10 s: longer than an etcd leader election.
    pub request_timeout: Duration,
    /// How long a broken watch keeps trying to resume before it ends with `Unavailable`.
    /// Longer hides longer outages from watchers; shorter tells them sooner. Default 30 s.
    pub watch_reconnect_timeout: Duration,
    /// TLS to etcd's client port (off by default: plain-text gRPC).
    pub tls: EtcdTls,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            watch_reconnect_timeout: Duration::from_secs(30),
            tls: EtcdTls::default(),
        }
    }
}

impl EtcdOptions {
    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`tls`](Self::tls).
    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`watch_reconnect_timeout`](Self::watch_reconnect_timeout).
    pub fn with_watch_reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.watch_reconnect_timeout = timeout;
        self
    }
}

/// A [`MetadataStore`] in an etcd cluster (v3 API).
///
/// Cheap to share as `Arc<dyn MetadataStore>`; every call clones the client's channel handle.
pub struct EtcdStore {
    // A handle onto one balanced gRPC channel; clones share it.
    client: Client,
    /// Put in front of every key.
    namespace: String,
    endpoints: Vec<String>,
    options: EtcdOptions,
    // Never sent on; dropping it (with the store) ends the watch streams.
    closed: watch::Sender<()>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Runs one etcd request within `timeout`; a timeout is `Unavailable`.
async fn timed<T>(
    timeout: Duration,
    what: impl FnOnce() -> String,
    request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::etcd(what(), source)),
        Err(_) => Err(Error::unavailable(format!(
            "{}: etcd did not answer within {timeout:?}",
            what()
        ))),
    }
}

/// The end of the key range holding every key that starts with `start` (etcd's convention:
/// `[0]` means "no end").
fn prefix_end(start: &[u8]) -> Vec<u8> {
    let mut end = start.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn revision(raw: i64) -> u64 {
    // etcd revisions are positive; 0 appears only for "none".
    u64::try_from(raw).unwrap_or(0)
}

/// The namespacing of one store, shared with its watch streams.
#[derive(Clone, Debug)]
struct Namespace(String);

impl Namespace {
    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.0.len() + key.len());
        full.extend_from_slice(self.0.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    /// `(key, range_end)` of every key starting with `prefix`.
    fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(prefix);
        if start.is_empty() {
            // The whole keyspace, in etcd's spelling.
            (vec![0], vec![0])
        } else {
            let end = prefix_end(&start);
            (start, end)
        }
    }

    fn strip(&self, raw: &[u8]) -> Result<String> {
        let rest = raw
            .strip_prefix(self.0.as_bytes())
            .ok_or_else(|| Error::Corrupt {
                key: String::from_utf8_lossy(raw).into_owned(),
                message: format!("etcd returned a key outside namespace `{}`", self.0),
            })?;
        String::from_utf8(rest.to_vec()).map_err(|_| Error::Corrupt {
            key: String::from_utf8_lossy(raw).into_owned(),
            message: "key is not UTF-8".to_owned(),
        })
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: self.strip(kv.key())?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: revision(kv.create_revision()),
            mod_revision: revision(kv.mod_revision()),
        })
    }
}

/// etcd-client's TLS settings for `tls`, its PEM files read now; `None` when TLS is off.
fn tls_options(tls: &EtcdTls) -> Result<Option<TlsOptions>> {
    tls.validate()?;
    let Some(ca_file) = &tls.ca_file else {
        return Ok(None);
    };
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Error::invalid(format!("reading the etcd {what} `{}`: {e}", path.display()))
        })
    };
    let mut options =
        TlsOptions::new().ca_certificate(Certificate::from_pem(read("CA file", ca_file)?));
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        options = options.identity(Identity::from_pem(
            read("client certificate", cert)?,
            read("client key", key)?,
        ));
    }
    Ok(Some(options))
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`host:port` each) with keys under `prefix` (`""` for
    /// none), and checks that it answers, all within `options.connect_timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if etcd does not answer in
    /// time; [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for no or malformed endpoints.
    pub async fn connect(endpoints: &[String], prefix: &str, options: EtcdOptions) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::invalid("no etcd endpoints"));
        }
        let what = format!("connect to etcd at {}", endpoints.join(","));
        let mut connect_options = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
        if let Some(tls) = tls_options(&options.tls)? {
            connect_options = connect_options.with_tls(tls);
        }
        let timeout = options.connect_timeout;
        let attempt = async {
            let client = Client::connect(endpoints, Some(connect_options))
                .await
                .map_err(|e| Error::etcd(what.clone(), e))?;
            let store = EtcdStore {
                client,
                namespace: prefix.to_owned(),
                endpoints: endpoints.to_vec(),
                options,
                closed: watch::Sender::new(()),
            };
            // The client connects lazily: a first request proves etcd is there.
            store.current_revision().await.map_err(|e| match e {
                Error::Etcd { context, source } => Error::Etcd {
                    context: format!("{what}: {context}"),
                    source,
                },
                Error::Unavailable { message } => Error::Unavailable {
                    message: format!("{what}: {message}"),
                },
                other => other,
            })?;
            Ok(store)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::unavailable(format!(
                "{what}: no answer within the connect timeout of {timeout:?}"
            ))),
        }
    }

    /// The namespace (key prefix) of this store.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn ns(&self) -> Namespace {
        Namespace(self.namespace.clone())
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_DECODING_BYTES)
    }

    async fn timed<T>(
        &self,
        what: impl FnOnce() -> String,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        timed(self.options.request_timeout, what, request).await
    }
}

fn compares_to_etcd(ns: &Namespace, compares: &[Compare]) -> Vec<etcd_client::Compare> {
    let mut out = Vec::with_capacity(compares.len());
    for compare in compares {
        let key = ns.key(&compare.key);
        match compare.expect {
            Precondition::Any => {}
            Precondition::Absent => {
                out.push(etcd_client::Compare::create_revision(
                    key,
                    CompareOp::Equal,
                    0,
                ));
            }
            Precondition::ModRevision(rev) => {
                // etcd reads an absent key's mod_revision as 0; ours requires the key to
                // exist, so `ModRevision(0)` must never hold.
                if rev == 0 {
                    out.push(etcd_client::Compare::create_revision(
                        key.clone(),
                        CompareOp::NotEqual,
                        0,
                    ));
                }
                let rev = i64::try_from(rev).unwrap_or(i64::MAX);
                out.push(etcd_client::Compare::mod_revision(
                    key,
                    CompareOp::Equal,
                    rev,
                ));
            }
        }
    }
    out
}

fn ops_to_etcd(ns: &Namespace, ops: Vec<Op>) -> Vec<TxnOp> {
    ops.into_iter()
        .map(|op| match op {
            Op::Put { key, value } => TxnOp::put(ns.key(&key), value.to_vec(), None),
            Op::PutWithLease { key, value, lease } => TxnOp::put(
                ns.key(&key),
                value.to_vec(),
                Some(PutOptions::new().with_lease(lease.0)),
            ),
            Op::Delete { key } => TxnOp::delete(ns.key(&key), None),
            Op::DeletePrefix { prefix } => {
                let (start, end) = ns.range(&prefix);
                TxnOp::delete(start, Some(DeleteOptions::new().with_range(end)))
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl MetadataStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let ns = self.ns();
        let mut kv = self.kv();
        let response = self
            .timed(|| format!("get `{key}`"), kv.get(ns.key(key), None))
            .await?;
        response
            .kvs()
            .first()
            .map(|kv| ns.key_value(kv))
            .transpose()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let ns = self.ns();
        let mut client = self.kv();
        let (mut start, end) = ns.range(prefix);
        let mut out = Vec::new();
        // Later pages read at the first page's revision: one consistent snapshot.
        let mut snapshot = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if snapshot > 0 {
                options = options.with_revision(snapshot);
            }
            let mut response = self
                .timed(
                    || format!("list `{prefix}`"),
                    client.get(start.clone(), Some(options)),
                )
                .await?;
            if snapshot == 0 {
                snapshot = response.header().map_or(0, |h| h.revision());
            }
            let kvs = response.take_kvs();
            for kv in &kvs {
                out.push(ns.key_value(kv)?);
            }
            match kvs.last() {
                Some(last) if response.more() => {
                    // The next page starts just after the last key.
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        validate(&compares, &ops)?;
        let ns = self.ns();
        let what = || {
            let first = ops
                .first()
                .map(|op| match op {
                    Op::Put { key, .. } | Op::PutWithLease { key, .. } | Op::Delete { key } => {
                        format!(", first key `{key}`")
                    }
                    Op::DeletePrefix { prefix } => format!(", first prefix `{prefix}`"),
                })
                .unwrap_or_default();
            format!(
                "txn of {} compares and {} ops{first}",
                compares.len(),
                ops.len()
            )
        };
        let what = what();
        let txn = Txn::new()
            .when(compares_to_etcd(&ns, &compares))
            .and_then(ops_to_etcd(&ns, ops));
        let mut kv = self.kv();
        let response = self.timed(|| what, kv.txn(txn)).await?;
        Ok(TxnResult {
            succeeded: response.succeeded(),
            revision: revision(response.header().map_or(0, |h| h.revision())),
        })
    }

    async fn current_revision(&self) -> Result<u64> {
        let mut kv = self.kv();
        // Any linearizable read carries the store revision in its header; count one key.
        let probe = if self.namespace.is_empty() {
            vec![0]
        } else {
            self.namespace.as_bytes().to_vec()
        };
        let response = self
            .timed(
                || "read the current revision".to_owned(),
                kv.get(probe, Some(GetOptions::new().with_count_only())),
            )
            .await?;
        Ok(revision(response.header().map_or(0, |h| h.revision())))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let secs = ttl_seconds(ttl)?;
        let mut leases = self.client.lease_client();
        let response = self
            .timed(
                || format!("grant a lease of {secs} s"),
                leases.grant(secs, None),
            )
            .await?;
        if !response.error().is_empty() {
            return Err(Error::unavailable(format!(
                "grant a lease of {secs} s: {}",
                response.error()
            )));
        }
        Ok(LeaseId(response.id()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let mut leases = self.client.lease_client();
        let what = || format!("keep lease {lease} alive");
        // Opening the stream sends one keep-alive and checks its answer (TTL 0: no lease).
        // A second exchange on the same stream reads the TTL granted (etcd-client keeps the
        // first answer to itself).
        let exchange = async {
            let (mut keeper, mut answers) = leases.keep_alive(lease.0).await?;
            keeper.keep_alive().await?;
            answers.message().await
        };
        let answer = self.timed(what, exchange).await?;
        match answer {
            Some(answer) if answer.ttl() > 0 => {
                Ok(Duration::from_secs(answer.ttl().unsigned_abs()))
            }
            _ => Err(Error::not_found(format!("lease {lease}"))),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut leases = self.client.lease_client();
        match self
            .timed(|| format!("revoke lease {lease}"), leases.revoke(lease.0))
            .await
        {
            Ok(_) => Ok(()),
            // Already lapsed or revoked: the keys are gone, which is what the caller wants.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream> {
        let ns = self.ns();
        let (key, end) = ns.range(prefix);
        let mut state = EtcdWatch {
            client: self.client.clone(),
            ns,
            prefix: prefix.to_owned(),
            key,
            end,
            next: from_revision,
            stream: None,
            buffer: VecDeque::new(),
            closed: self.closed.subscribe(),
            options: self.options.clone(),
            done: false,
        };
        // Created here, not on first poll: "from now" means from this call, and an etcd that
        // is down fails the call rather than the first poll.
        state.create().await?;
        Ok(WatchStream::new(futures::stream::unfold(state, etcd_next)))
    }
}

/// One watch's state, kept by `unfold` across polls (so a dropped `next()` loses nothing).
struct EtcdWatch {
    client: Client,
    ns: Namespace,
    prefix: String,
    key: Vec<u8>,
    end: Vec<u8>,
    /// The next revision this watch needs: where a re-created watch starts. 0 until the first
    /// creation when watching "from now".
    next: u64,
    stream: Option<etcd_client::WatchStream>,
    /// Events received, not yet yielded.
    buffer: VecDeque<WatchEvent>,
    closed: watch::Receiver<()>,
    options: EtcdOptions,
    done: bool,
}

impl EtcdWatch {
    /// Creates the etcd watch from `next` and waits for etcd to confirm it.
    async fn create(&mut self) -> Result<()> {
        let mut options = WatchOptions::new()
            .with_range(self.end.clone())
            .with_progress_notify();
        if self.next > 0 {
            options = options.with_start_revision(i64::try_from(self.next).unwrap_or(i64::MAX));
        }
        let prefix = &self.prefix;
        let next = self.next;
        let what = || format!("watch `{prefix}` from revision {next}");
        let timeout = self.options.request_timeout;
        let mut watches = self.client.watch_client();
        let key = self.key.clone();
        let created = async {
            let mut stream = watches.watch(key, Some(options)).await?;
            let first = stream.message().await?;
            Ok((stream, first))
        };
        let (stream, first) = timed(timeout, what, created).await?;
        let Some(first) = first else {
            return Err(Error::unavailable(format!(
                "watch `{prefix}`: etcd closed the stream before confirming it"
            )));
        };
        if first.canceled() || !first.created() {
            return Err(self.cancelled(&first));
        }
        if self.next == 0 {
            self.next = revision(first.header().map_or(0, |h| h.revision())) + 1;
        }
        self.stream = Some(stream);
        Ok(())
    }

    /// The error for a watch etcd cancelled.
    fn cancelled(&self, response: &etcd_client::WatchResponse) -> Error {
        if response.compact_revision() > 0 {
            Error::Compacted {
                requested: self.next,
                available: revision(response.compact_revision()),
            }
        } else {
            Error::unavailable(format!(
                "watch `{}`: etcd cancelled it: {}",
                self.prefix,
                response.cancel_reason()
            ))
        }
    }

    /// Takes the events of one response, or says why the stream must be re-created.
    fn absorb(&mut self, response: &etcd_client::WatchResponse) -> Result<()> {
        let mut last = None;
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let event = match event.event_type() {
                EventType::Put => WatchEvent::Put(self.ns.key_value(kv)?),
                EventType::Delete => WatchEvent::Delete {
                    key: self.ns.strip(kv.key())?,
                    mod_revision: revision(kv.mod_revision()),
                },
            };
            last = Some(event.revision());
            self.buffer.push_back(event);
        }
        match last {
            Some(rev) => self.next = self.next.max(rev + 1),
            None if !response.created() => {
                // A progress notification: every later event is above the header revision.
                let progress = revision(response.header().map_or(0, |h| h.revision()));
                self.next = self.next.max(progress + 1);
            }
            None => {}
        }
        Ok(())
    }

    /// Re-creates the watch from `next`, retrying until the reconnect window closes.
    /// `Ok(false)`: the store was dropped.
    async fn reconnect(&mut self) -> Result<bool> {
        let deadline = Instant::now() + self.options.watch_reconnect_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let error = match self.create().await {
                Ok(()) => {
                    tracing::debug!(prefix = %self.prefix, next = self.next, "watch resumed");
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Compacted => return Err(e),
                Err(e) => e,
            };
            if Instant::now() + backoff >= deadline {
                return Err(Error::unavailable(format!(
                    "watch `{}` could not resume from revision {} within {:?}: {error}",
                    self.prefix, self.next, self.options.watch_reconnect_timeout
                )));
            }
            tokio::select! {
                biased;
                _ = self.closed.changed() => return Ok(false),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// One step of an etcd watch stream.
async fn etcd_next(mut state: EtcdWatch) -> Option<(Result<WatchEvent>, EtcdWatch)> {
    loop {
        if state.done {
            return None;
        }
        if let Some(event) = state.buffer.pop_front() {
            return Some((Ok(event), state));
        }
        let Some(stream) = state.stream.as_mut() else {
            match state.reconnect().await {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(error) => {
                    state.done = true;
                    return Some((Err(error), state));
                }
            }
        };
        let message = tokio::select! {
            biased;
            _ = state.closed.changed() => return None,
            message = stream.message() => message,
        };
        match message {
            Ok(Some(response)) if response.canceled() => {
                let error = state.cancelled(&response);
                state.stream = None;
                if error.kind() == ErrorKind::Compacted {
                    state.done = true;
                    return Some((Err(error), state));
                }
                tracing::debug!(prefix = %state.prefix, %error, "watch cancelled by etcd; re-creating");
            }
            Ok(Some(response)) => {
                if let Err(error) = state.absorb(&response) {
                    state.done = true;
                    return Some((Err(error), state));
                }
            }
            Ok(None) => {
                tracing::debug!(prefix = %state.prefix, "watch stream closed; re-creating");
                state.stream = None;
            }
            Err(error) => {
                tracing::debug!(prefix = %state.prefix, %error, "watch stream broke; re-creating");
                state.stream = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
    }

    #[test]
    fn namespacing() {
        let ns = Namespace("/prod".into());
        assert_eq!(ns.key("/k"), b"/prod/k");
        assert_eq!(
            ns.range("/t/"),
            (b"/prod/t/".to_vec(), b"/prod/t0".to_vec())
        );
        assert_eq!(ns.range(""), (b"/prod".to_vec(), b"/proe".to_vec()));
        assert_eq!(ns.strip(b"/prod/k").expect("strip"), "/k");
        assert_eq!(
            ns.strip(b"/other").expect_err("outside").kind(),
            ErrorKind::Data
        );
        let bare = Namespace(String::new());
        assert_eq!(bare.range(""), (vec![0], vec![0]));
    }

    #[test]
    fn absent_and_mod_revision_compares() {
        let ns = Namespace("/n".into());
        let compares = compares_to_etcd(
            &ns,
            &[
                Compare::new("/a", Precondition::Any),
                Compare::absent("/b"),
                Compare::mod_revision("/c", 7),
                Compare::mod_revision("/d", 0),
            ],
        );
        // Any adds nothing; ModRevision(0) adds an existence check.
        assert_eq!(compares.len(), 4);
    }
}
