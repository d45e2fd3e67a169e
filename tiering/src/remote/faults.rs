//! A fault-injecting object store, for tests: [`FaultStore`] wraps any `Arc<dyn ObjectStore>`,
//! forwards every method of the trait, and before forwarding applies the [`FaultSpec`] it was
//! built with — added latency, errors that read like an S3 `503 Slow Down` or `500 Internal
//! Error`, calls that never complete, and "fail the first N attempts" — per kind of operation
//! ([`OpKind`]) or for all of them.
//!
//! Only tests and test clusters use it: a node gets one only through
//! [`super::store::open_object_store_with_faults`] with a spec, never by default.
//!
//! # The spec string
//!
//! Rules separated by `;`, each a list of `key=value` (or bare flag) items separated by `,`:
//!
//! | item | meaning |
//! |---|---|
//! | `ops=put+get` | the operations the rule applies to, joined by `+`: `put`, `multipart` (starting a multipart upload), `get` (also ranged gets), `delete`, `list` (all listings), `copy` (also renames), or `all` (the default) |
//! | `latency=50ms` | sleep this long before each matching call (a `humantime` duration) |
//! | `fail_first=3` | the first 3 matching calls fail, later ones go through |
//! | `error=503` | the status the injected errors carry: `503` (the default) or `500`; without `fail_first`, *every* matching call fails |
//! | `hang` | matching calls never complete (their futures stay pending; list and delete streams never yield) |
//!
//! For example `fail_first=3,ops=put;latency=50ms` fails the first three puts and delays every
//! call by 50 ms; `ops=get,error=500` fails every get; `ops=list,hang` hangs every listing.
//! Rules apply in order, each counting its own matching calls; a call that one rule fails or
//! hangs meets no later rule. Injected errors are `object_store::Error::Generic` (what a
//! client's retries gave up on looks like that too), with a message naming the HTTP status.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use crate::error::{Error, Result};

/// A kind of object store operation, as fault rules select them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `put_opts`.
    Put,
    /// `put_multipart_opts` (starting a multipart upload; its parts are not affected).
    Multipart,
    /// `get_opts`, `get_ranges`.
    Get,
    /// Each location of `delete_stream` (and so `delete`).
    Delete,
    /// `list`, `list_with_offset`, `list_with_delimiter`.
    List,
    /// `copy_opts`, `rename_opts`.
    Copy,
}

impl OpKind {
    /// Every kind, in declaration order (`op as usize` indexes it).
    pub const ALL: [OpKind; 6] = [
        OpKind::Put,
        OpKind::Multipart,
        OpKind::Get,
        OpKind::Delete,
        OpKind::List,
        OpKind::Copy,
    ];

    /// The name in a spec string.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Multipart => "multipart",
            OpKind::Get => "get",
            OpKind::Delete => "delete",
            OpKind::List => "list",
            OpKind::Copy => "copy",
        }
    }
}

/// Injected failures of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status the error message names (503 or 500).
    pub status: u16,
    /// Fail only the first this many matching calls; `None`: every one.
    pub first: Option<u64>,
}

/// One rule of a [`FaultSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultRule {
    /// The operations it applies to; empty: all.
    pub ops: Vec<OpKind>,
    /// Sleep before each matching call.
    pub latency: Duration,
    /// Matching calls never complete.
    pub hang: bool,
    /// Matching calls fail.
    pub fail: Option<Failure>,
}

impl FaultRule {
    fn matches(&self, op: OpKind) -> bool {
        self.ops.is_empty() || self.ops.contains(&op)
    }
}

/// What a [`FaultStore`] injects: rules applied in order (see the module docs for the string
/// form, which [`FromStr`] parses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultSpec {
    /// The rules.
    pub rules: Vec<FaultRule>,
}

impl FromStr for FaultSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidConfig {
            reason: format!("object store fault spec `{s}`: {reason}"),
        };
        let mut rules = Vec::new();
        for rule_text in s.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let mut rule = FaultRule::default();
            let (mut status, mut first) = (None, None);
            for item in rule_text
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
            {
                let (key, value) = match item.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (item, None),
                };
                match (key, value) {
                    ("hang", None) => rule.hang = true,
                    ("ops", Some(v)) => {
                        for name in v.split('+').map(str::trim) {
                            if name == "all" {
                                rule.ops.clear();
                                rule.ops.extend(OpKind::ALL);
                                continue;
                            }
                            let op = OpKind::ALL
                                .into_iter()
                                .find(|k| k.name() == name)
                                .ok_or_else(|| invalid(format!("unknown operation `{name}`")))?;
                            if !rule.ops.contains(&op) {
                                rule.ops.push(op);
                            }
                        }
                    }
                    ("latency", Some(v)) => {
                        rule.latency = humantime::parse_duration(v)
                            .map_err(|e| invalid(format!("latency `{v}`: {e}")))?;
                    }
                    ("fail_first", Some(v)) => {
                        first = Some(
                            v.parse::<u64>()
                                .map_err(|e| invalid(format!("fail_first `{v}`: {e}")))?,
                        );
                    }
                    ("error", Some(v)) => match v {
                        "503" | "500" => status = v.parse().ok(),
                        _ => return Err(invalid(format!("error `{v}`: must be 503 or 500"))),
                    },
                    _ => return Err(invalid(format!("unknown item `{item}`"))),
                }
            }
            if rule.ops.len() == OpKind::ALL.len() {
                rule.ops.clear();
            }
            if status.is_some() || first.is_some() {
                rule.fail = Some(Failure {
                    status: status.unwrap_or(503),
                    first,
                });
            }
            if rule.fail.is_none() && !rule.hang && rule.latency.is_zero() {
                return Err(invalid(format!("rule `{rule_text}` injects nothing")));
            }
            rules.push(rule);
        }
        Ok(FaultSpec { rules })
    }
}

/// The error an injected failure carries (inside `object_store::Error::Generic`).
#[derive(Debug, thiserror::Error)]
#[error("injected fault: HTTP {status} {reason}: {op} `{location}` (call {call} of this rule)")]
pub struct InjectedFault {
    /// 503 or 500.
    pub status: u16,
    /// `Service Unavailable` / `Internal Server Error`.
    pub reason: &'static str,
    /// The operation's name.
    pub op: &'static str,
    /// The object key (or listing prefix).
    pub location: String,
    /// Which matching call of the rule this was, from 1.
    pub call: u64,
}

/// The rules and their counters, shared with the streams a [`FaultStore`] returns.
#[derive(Debug)]
struct Faults {
    rules: Vec<(FaultRule, AtomicU64)>,
    /// Calls per [`OpKind`] (in `OpKind::ALL` order), faulted or not.
    calls: [AtomicU64; OpKind::ALL.len()],
    injected: AtomicU64,
}

impl Faults {
    /// Applies the rules to one call of `op` on `location`.
    async fn inject(&self, op: OpKind, location: &str) -> object_store::Result<()> {
        self.calls[op as usize].fetch_add(1, Ordering::AcqRel);
        for (rule, calls) in &self.rules {
            if !rule.matches(op) {
                continue;
            }
            if !rule.latency.is_zero() {
                tokio::time::sleep(rule.latency).await;
            }
            if rule.hang {
                std::future::pending::<()>().await;
            }
            let Some(fail) = rule.fail else {
                continue;
            };
            let call = calls.fetch_add(1, Ordering::AcqRel) + 1;
            if fail.first.is_none_or(|n| call <= n) {
                self.injected.fetch_add(1, Ordering::AcqRel);
                return Err(object_store::Error::Generic {
                    store: "faults",
                    source: Box::new(InjectedFault {
                        status: fail.status,
                        reason: if fail.status == 500 {
                            "Internal Server Error"
                        } else {
                            "Service Unavailable"
                        },
                        op: op.name(),
                        location: location.to_string(),
                        call,
                    }),
                });
            }
        }
        Ok(())
    }
}

/// An object store that injects the faults of a [`FaultSpec`] and forwards everything else to
/// the store it wraps. See the module docs.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
}

impl FaultStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, spec: FaultSpec) -> Self {
        FaultStore {
            inner,
            faults: Arc::new(Faults {
                rules: spec
                    .rules
                    .into_iter()
                    .map(|r| (r, AtomicU64::new(0)))
                    .collect(),
                calls: Default::default(),
                injected: AtomicU64::new(0),
            }),
        }
    }

    /// How many calls of kind `op` were made so far, faulted or not.
    pub fn calls(&self, op: OpKind) -> u64 {
        self.faults.calls[op as usize].load(Ordering::Acquire)
    }

    /// How many errors were injected so far (each one a call the caller has to retry).
    pub fn injected_errors(&self) -> u64 {
        self.faults.injected.load(Ordering::Acquire)
    }

    /// A stream that applies the rules for `op` once, when first polled, then yields `stream`
    /// (or the injected error).
    fn guard_stream<T: Send + 'static>(
        &self,
        op: OpKind,
        location: String,
        stream: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let faults = self.faults.clone();
        futures::stream::once(async move {
            match faults.inject(op, &location).await {
                Ok(()) => stream,
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

fn prefix_name(prefix: Option<&Path>) -> String {
    prefix.map(|p| p.to_string()).unwrap_or_default()
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.faults.inject(OpKind::Put, location.as_ref()).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.faults
            .inject(OpKind::Multipart, location.as_ref())
            .await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.faults.inject(OpKind::Get, location.as_ref()).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.faults.inject(OpKind::Get, location.as_ref()).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let faults = self.faults.clone();
        let checked = locations
            .and_then(move |location| {
                let faults = faults.clone();
                async move {
                    faults.inject(OpKind::Delete, location.as_ref()).await?;
                    Ok(location)
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.guard_stream(OpKind::List, prefix_name(prefix), self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.guard_stream(
            OpKind::List,
            prefix_name(prefix),
            self.inner.list_with_offset(prefix, offset),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.faults
            .inject(OpKind::List, &prefix_name(prefix))
            .await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.faults.inject(OpKind::Copy, to.as_ref()).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.faults.inject(OpKind::Copy, to.as_ref()).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn store(spec: &str) -> (Arc<FaultStore>, Arc<dyn ObjectStore>) {
        let faulty = Arc::new(FaultStore::new(
            Arc::new(InMemory::new()),
            spec.parse().unwrap(),
        ));
        (faulty.clone(), faulty)
    }

    fn status(e: &object_store::Error) -> u16 {
        let object_store::Error::Generic { source, .. } = e else {
            panic!("not an injected fault: {e}")
        };
        source.downcast_ref::<InjectedFault>().unwrap().status
    }

    #[test]
    fn parses_the_documented_forms() {
        let spec: FaultSpec = "fail_first=3,ops=put;latency=50ms".parse().unwrap();
        assert_eq!(
            spec.rules,
            vec![
                FaultRule {
                    ops: vec![OpKind::Put],
                    fail: Some(Failure {
                        status: 503,
                        first: Some(3)
                    }),
                    ..FaultRule::default()
                },
                FaultRule {
                    latency: Duration::from_millis(50),
                    ..FaultRule::default()
                },
            ]
        );
        let spec: FaultSpec = " ops=get+list , error=500 ; ops=delete,hang "
            .parse()
            .unwrap();
        assert_eq!(spec.rules[0].ops, vec![OpKind::Get, OpKind::List]);
        assert_eq!(
            spec.rules[0].fail,
            Some(Failure {
                status: 500,
                first: None
            })
        );
        assert!(spec.rules[1].hang && spec.rules[1].fail.is_none());
        assert!(
            "ops=all,hang".parse::<FaultSpec>().unwrap().rules[0]
                .ops
                .is_empty()
        );
        assert!("".parse::<FaultSpec>().unwrap().rules.is_empty());
        for bad in [
            "ops=put",
            "ops=push,hang",
            "latency=soon",
            "fail_first=-1",
            "error=404",
            "retry=3",
            "hang=1",
        ] {
            let e = bad.parse::<FaultSpec>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn fail_first_n_then_success_per_operation_kind() {
        let (faulty, s) = store("fail_first=2,ops=put");
        let p = Path::from("a/b");
        for call in 1..=2 {
            let e = s.put(&p, "x".into()).await.unwrap_err();
            assert_eq!(status(&e), 503);
            assert!(e.to_string().contains("HTTP 503"), "{e}");
            assert!(e.to_string().contains(&format!("call {call}")), "{e}");
        }
        s.put(&p, "x".into()).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap().bytes().await.unwrap(), "x");
        assert_eq!(s.list(None).try_collect::<Vec<_>>().await.unwrap().len(), 1);
        s.delete(&p).await.unwrap();
        assert_eq!(faulty.injected_errors(), 2);
        assert_eq!(
            OpKind::ALL.map(|op| faulty.calls(op)),
            [3, 0, 1, 1, 1, 0],
            "put, multipart, get, delete, list, copy"
        );
    }

    #[tokio::test]
    async fn errors_on_every_call_of_the_selected_kinds() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let faulty = Arc::new(FaultStore::new(
            inner.clone(),
            "ops=get+list+delete+copy,error=500".parse().unwrap(),
        ));
        let s: Arc<dyn ObjectStore> = faulty.clone();
        let p = Path::from("k");
        s.put(&p, "v".into()).await.unwrap();
        assert_eq!(status(&s.get(&p).await.unwrap_err()), 500);
        assert_eq!(status(&s.get_range(&p, 0..1).await.unwrap_err()), 500);
        let listed = s.list(None).try_collect::<Vec<_>>().await.unwrap_err();
        assert_eq!(status(&listed), 500);
        assert_eq!(status(&s.list_with_delimiter(None).await.unwrap_err()), 500);
        assert_eq!(status(&s.delete(&p).await.unwrap_err()), 500);
        assert_eq!(
            status(&s.copy(&p, &Path::from("k2")).await.unwrap_err()),
            500
        );
        assert_eq!(faulty.injected_errors(), 6);
        // the failed calls changed nothing
        let left: Vec<_> = inner.list(None).try_collect().await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].location, p);
    }

    #[tokio::test]
    async fn multipart_starts_fail_and_then_upload_the_same_bytes() {
        let (_, s) = store("fail_first=1,ops=multipart");
        let p = Path::from("big");
        assert_eq!(status(&s.put_multipart(&p).await.err().unwrap()), 503);
        let mut upload = s.put_multipart(&p).await.unwrap();
        upload.put_part("abc".into()).await.unwrap();
        upload.complete().await.unwrap();
        assert_eq!(s.get(&p).await.unwrap().bytes().await.unwrap(), "abc");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_each_matching_call() {
        let (_, s) = store("latency=50ms,ops=put;latency=1s,ops=get");
        let p = Path::from("k");
        let t = tokio::time::Instant::now();
        s.put(&p, "v".into()).await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_millis(50));
        let t = tokio::time::Instant::now();
        s.get(&p).await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(1));
        let t = tokio::time::Instant::now();
        s.list(None).try_collect::<Vec<_>>().await.unwrap();
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn hangs_never_complete() {
        let (_, s) = store("ops=get+list,hang");
        let p = Path::from("k");
        s.put(&p, "v".into()).await.unwrap();
        let limit = Duration::from_secs(3600);
        assert!(tokio::time::timeout(limit, s.get(&p)).await.is_err());
        let listing = s.list(None).try_collect::<Vec<_>>();
        assert!(tokio::time::timeout(limit, listing).await.is_err());
        // other kinds are untouched
        tokio::time::timeout(limit, s.delete(&p))
            .await
            .unwrap()
            .unwrap();
    }
}
