//! The Search service: structured searches, streamed in chunks, each row
//! with its provenance, and a summary at the end.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use nadc_core::time::Clock;
use nadc_core::{Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::{ResultSummary, timeline};
use nadc_store::Store;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::auth::caller;

/// Rows per streamed chunk.
const CHUNK_ROWS: usize = 500;

/// The Search service.
#[derive(Clone)]
pub struct SearchService {
    /// The store searched.
    pub store: Arc<dyn Store>,
    /// The node's name, for provenance.
    pub node: String,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// Retention in days: the default start of a window.
    pub retention_days: u32,
    /// Rows returned when the request names no limit.
    pub default_limit: usize,
    /// Most rows a request may ask for.
    pub max_limit: usize,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::SearchChunk, Status>> + Send>>;

fn summary_to_pb(s: &ResultSummary, elapsed_us: u64) -> pb::SearchSummary {
    pb::SearchSummary {
        rows: s.rows,
        forces: s
            .forces
            .iter()
            .map(|(f, n)| pb::ForceCount {
                force: f.to_string(),
                rows: *n,
            })
            .collect(),
        cameras: s.cameras.len() as u64,
        elapsed_us,
        truncated: s.truncated,
    }
}

impl SearchService {
    fn window(
        &self,
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
    ) -> Result<(Timestamp, Timestamp), Status> {
        let now = self.clock.now();
        let parse = |t: Option<&prost_types::Timestamp>, name: &str, default: Timestamp| match t {
            None => Ok(default),
            Some(t) => proto::from_pb_time(t).ok_or_else(|| {
                Status::invalid_argument(format!("{name} is outside 1970-01-01 to 9999-12-31"))
            }),
        };
        let from = parse(from, "from", now.minus_days(self.retention_days))?;
        let to = parse(to, "to", now)?;
        if from > to {
            return Err(Status::invalid_argument(format!(
                "the window is inverted: from {from} is after to {to}"
            )));
        }
        Ok((from, to))
    }

    fn limit(&self, requested: u32) -> Result<usize, Status> {
        match requested as usize {
            0 => Ok(self.default_limit),
            n if n <= self.max_limit => Ok(n),
            n => Err(Status::invalid_argument(format!(
                "limit {n} is above this node's maximum of {}",
                self.max_limit
            ))),
        }
    }
}

#[tonic::async_trait]
impl pb::search_server::Search for SearchService {
    type VrmTimelineStream = ChunkStream;

    async fn vrm_timeline(
        &self,
        req: Request<pb::VrmTimelineRequest>,
    ) -> Result<Response<Self::VrmTimelineStream>, Status> {
        let who = caller(&req)?;
        let (force, user, _) = who.require_searcher()?;
        let (force, user) = (force.clone(), user.to_string());
        let q = req.into_inner();
        let vrm =
            Vrm::normalise(&q.vrm).map_err(|e| Status::invalid_argument(format!("vrm: {e}")))?;
        let (from, to) = self.window(q.from.as_ref(), q.to.as_ref())?;
        let limit = self.limit(q.limit)?;
        let (tx, rx) = mpsc::channel::<Result<pb::SearchChunk, Status>>(4);
        let store = self.store.clone();
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            let mut client_gone = false;
            let result = timeline(store.as_ref(), &vrm, from, to, limit, &mut |read| {
                chunk.push(proto::row_from_stored(&read, &node));
                if chunk.len() == CHUNK_ROWS {
                    let rows = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                    let msg = pb::SearchChunk {
                        chunk: Some(pb::search_chunk::Chunk::Rows(pb::RowBatch { rows })),
                    };
                    if tx.blocking_send(Ok(msg)).is_err() {
                        client_gone = true;
                        return std::ops::ControlFlow::Break(());
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
            if client_gone {
                return;
            }
            match result {
                Ok(summary) => {
                    if !chunk.is_empty() {
                        let msg = pb::SearchChunk {
                            chunk: Some(pb::search_chunk::Chunk::Rows(pb::RowBatch {
                                rows: chunk,
                            })),
                        };
                        let _ = tx.blocking_send(Ok(msg));
                    }
                    let elapsed = started.elapsed().as_micros() as u64;
                    info!(user = %user, force = %force, search = "vrm_timeline", vrm = %vrm.redacted(),
                        rows = summary.rows, elapsed_us = elapsed, "search done");
                    let _ = tx.blocking_send(Ok(pb::SearchChunk {
                        chunk: Some(pb::search_chunk::Chunk::Summary(summary_to_pb(
                            &summary, elapsed,
                        ))),
                    }));
                }
                Err(e) => {
                    warn!(error = %e, "vrm timeline failed");
                    let _ =
                        tx.blocking_send(Err(Status::unavailable(format!("search failed: {e}"))));
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
