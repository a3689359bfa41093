//! The node's metrics in Prometheus's text format, served on a listener of
//! their own (plain HTTP, `GET /metrics`; bind it to localhost or a
//! management network: it needs no certificate, and so discloses no read,
//! plate, position, user or case, only counts by force and RPC, though how
//! many searches of each kind a node answers says something of the work
//! under way).
//!
//! - `nadc_ingest_reads_total{force, outcome}`: reads taken (`accepted`,
//!   `duplicate`, `rejected`); `nadc_ingest_rejected_total{force, reason}`
//!   by reason code.
//! - `nadc_rpc_seconds{service, method, code}`: every RPC from its request
//!   to the end of its answer (a streamed search's last message), by gRPC
//!   status; paths outside the API are counted as `other`.
//! - `nadc_replication_*`, replicated nodes only: the position applied,
//!   the log's last, how far behind, whether the log is reachable, and
//!   whether answers carry the stale notice (read at each scrape).
//! - `nadc_store_reads{force}`: reads held per owning force.
//!
//! Each node has its own recorder (no process-wide state), so several
//! nodes in one process keep their figures apart.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics::{Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use nadc_core::ForceId;
use nadc_proto::pb;
use nadc_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codegen::http;
use tracing::warn;

const META: Metadata<'static> = Metadata::new("nadc", Level::INFO, None);

/// Latency buckets, seconds: a millisecond to a minute.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A node's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    store: Arc<dyn Store>,
    replication: OnceLock<Arc<crate::replication::Replication>>,
    /// When the replica's gauges were last read (the log is asked at most
    /// once a second, however often the endpoint is scraped).
    replication_read: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A node's metrics, its store's figures read at each scrape.
    pub fn new(store: Arc<dyn Store>) -> Arc<Metrics> {
        let recorder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
            Ok(b) => b.build_recorder(),
            // (Only an empty bucket list is refused.)
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let m = Metrics {
            recorder,
            handle,
            store,
            replication: OnceLock::new(),
            replication_read: tokio::sync::Mutex::new(None),
        };
        m.describe();
        Arc::new(m)
    }

    fn describe(&self) {
        let r = &self.recorder;
        r.describe_counter(
            "nadc_ingest_reads_total".into(),
            Some(Unit::Count),
            "Reads pushed by BOFs, by owning force and outcome (accepted, duplicate, rejected)."
                .into(),
        );
        r.describe_counter(
            "nadc_ingest_rejected_total".into(),
            Some(Unit::Count),
            "Reads refused, by owning force and reason code.".into(),
        );
        r.describe_histogram(
            "nadc_rpc_seconds".into(),
            Some(Unit::Seconds),
            "Each RPC from its request to the end of its answer, by service, method and gRPC status.".into(),
        );
        r.describe_gauge(
            "nadc_replication_applied_position".into(),
            None,
            "The log position this replica has applied.".into(),
        );
        r.describe_gauge(
            "nadc_replication_last_position".into(),
            None,
            "The log's last position, as last read.".into(),
        );
        r.describe_gauge(
            "nadc_replication_behind".into(),
            Some(Unit::Count),
            "Messages of the log this replica has not applied.".into(),
        );
        r.describe_gauge(
            "nadc_replication_log_reachable".into(),
            None,
            "1 if the log answered this scrape, else 0.".into(),
        );
        r.describe_gauge(
            "nadc_replication_stale".into(),
            None,
            "1 while this replica's answers carry the stale notice, else 0.".into(),
        );
        r.describe_gauge(
            "nadc_store_reads".into(),
            Some(Unit::Count),
            "Reads held in the store, by owning force.".into(),
        );
    }

    /// Scrapes read the replica's state from now on.
    pub fn watch_replication(&self, r: Arc<crate::replication::Replication>) {
        let _ = self.replication.set(r);
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    fn gauge(&self, name: &'static str) -> metrics::Gauge {
        self.recorder.register_gauge(&Key::from_name(name), &META)
    }

    /// Counts a batch of `force`'s reads: what was stored, what the node
    /// already held, and each refusal by its reason.
    pub fn ingested(&self, force: &ForceId, result: &pb::BatchResult) {
        let f = force.as_str().to_string();
        let outcome =
            |o: &'static str| vec![Label::new("force", f.clone()), Label::new("outcome", o)];
        self.counter("nadc_ingest_reads_total", outcome("accepted"))
            .increment(u64::from(result.accepted));
        self.counter("nadc_ingest_reads_total", outcome("duplicate"))
            .increment(u64::from(result.duplicates));
        self.counter("nadc_ingest_reads_total", outcome("rejected"))
            .increment(result.rejected.len() as u64);
        for r in &result.rejected {
            let reason = nadc_proto::code_name(r.code);
            self.counter(
                "nadc_ingest_rejected_total",
                vec![Label::new("force", f.clone()), Label::new("reason", reason)],
            )
            .increment(1);
        }
    }

    /// The labels of an RPC at `path` (as on the wire): its service and
    /// method, or `other` for a path outside the API (so no client can
    /// grow the series without bound).
    fn rpc_labels(path: &str) -> (&'static str, &'static str) {
        crate::rules::rule_for(path).map_or(("other", "other"), |r| (r.service, r.method))
    }

    /// Times one RPC that ended with `code`.
    fn rpc(
        &self,
        (service, method): (&'static str, &'static str),
        code: tonic::Code,
        took: Duration,
    ) {
        let labels = vec![
            Label::new("service", service),
            Label::new("method", method),
            Label::new("code", code_label(code)),
        ];
        self.recorder
            .register_histogram(&Key::from_parts("nadc_rpc_seconds", labels), &META)
            .record(took.as_secs_f64());
    }

    /// The exposition text, the gauges read now.
    pub async fn render(&self) -> String {
        let mut last = self.replication_read.lock().await;
        if let Some(r) = self
            .replication
            .get()
            .filter(|_| last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)))
        {
            *last = Some(Instant::now());
            let st = r.status().await;
            self.gauge("nadc_replication_applied_position")
                .set(st.applied as f64);
            self.gauge("nadc_replication_last_position")
                .set(st.last_in_log as f64);
            self.gauge("nadc_replication_behind").set(st.behind as f64);
            self.gauge("nadc_replication_log_reachable")
                .set(f64::from(u8::from(st.log_reachable)));
            self.gauge("nadc_replication_stale")
                .set(f64::from(u8::from(r.stale().is_some())));
        }
        drop(last);
        let store = self.store.clone();
        if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || store.stats()).await {
            for (force, n) in &stats.reads_by_force {
                let labels = vec![Label::new("force", force.as_str().to_string())];
                self.recorder
                    .register_gauge(&Key::from_parts("nadc_store_reads", labels), &META)
                    .set(*n as f64);
            }
        }
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// A gRPC status code as a label (`OK`, `INVALID_ARGUMENT`, ...).
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Scrapes served at once, at most; more connections are closed at once.
const MAX_SCRAPES: usize = 8;

/// Serves `GET /metrics` on `listener` until `stop`: one request per
/// connection (nothing is held open between scrapes), at most
/// [`MAX_SCRAPES`] at once, each cut at `stop`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // (Out of descriptors, say: wait rather than spin.)
                warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let (metrics, mut stop) = (metrics.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&metrics, &req).await) }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(false)
                .serve_connection(io, service);
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                _ = conn => {}
                () = stopped => {}
            }
        });
    }
}

async fn answer<B>(
    metrics: &Metrics,
    req: &http::Request<B>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/metrics") => (
            http::StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render().await,
        ),
        (&http::Method::GET, _) => (
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "only /metrics is served here\n".to_string(),
        ),
        _ => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET /metrics\n".to_string(),
        ),
    };
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// Binds the metrics listener at `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Times every RPC to the end of its answer ([`Metrics::rpc`]).
#[derive(Clone, Debug)]
pub struct RpcTimingLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for RpcTimingLayer {
    type Service = RpcTiming<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcTiming {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// [`RpcTimingLayer`]'s service.
#[derive(Clone, Debug)]
pub struct RpcTiming<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type Answer<E> =
    Pin<Box<dyn std::future::Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for RpcTiming<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timed = Timed {
            metrics: self.metrics.clone(),
            rpc: Metrics::rpc_labels(req.uri().path()),
            started: Instant::now(),
            code: None,
            done: false,
        };
        let answer = self.inner.call(req);
        Box::pin(async move {
            let r = answer.await?;
            let (parts, body) = r.into_parts();
            let mut timed = timed;
            // A trailers-only answer (most refusals) has its status here.
            timed.code = status_of(&parts.headers);
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(TimedBody { inner: body, timed }),
            ))
        })
    }
}

fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// One RPC being timed: recorded once, when its answer ends (or is
/// dropped unfinished: the client went away).
struct Timed {
    metrics: Arc<Metrics>,
    rpc: (&'static str, &'static str),
    started: Instant,
    code: Option<tonic::Code>,
    done: bool,
}

impl Timed {
    fn finish(&mut self, code: Option<tonic::Code>) {
        if self.done {
            return;
        }
        self.done = true;
        let code = code.or(self.code).unwrap_or(tonic::Code::Cancelled);
        self.metrics.rpc(self.rpc, code, self.started.elapsed());
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        // Ended before its status: the client went away.
        self.finish(Some(self.code.unwrap_or(tonic::Code::Cancelled)));
    }
}

struct TimedBody {
    inner: tonic::body::Body,
    timed: Timed,
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(t) = frame.trailers_ref() {
                    let code = status_of(t);
                    this.timed.finish(code);
                }
            }
            Poll::Ready(Some(Err(s))) => this.timed.finish(Some(s.code())),
            Poll::Ready(None) => this.timed.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
