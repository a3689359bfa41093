//! National searches: fanned out to the peers, merged exactly by time or
//! rank, each node's outcome reported, audited as one search.

use std::sync::Arc;
use std::time::Instant;

use nadc_core::geo::Polygon;
use nadc_core::{Circle, ForceId, GeoPoint, Principal, Timestamp};
use nadc_proto::pb;
use nadc_query::Shape;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::disclosure::CaseRead;
use crate::federation::{Federation, PeerCall, Reach, on_behalf_of};
use crate::governance::{Actor, Audited};
use crate::merge::{Merge, Order, Source};
use crate::page::PageVrms;
use nadc_core::audit::Outcome;
use serde_json::json;

use super::{CHUNK_ROWS, ChunkStream, SearchService, pb_time, rows_chunk};
use crate::error::ServiceError;

/// The rows each node is asked for so that the merged page
/// `offset..offset + limit` is exact: its first `offset + limit`.
pub(super) fn widen(limit: usize, offset: u32, max: usize) -> u32 {
    limit
        .saturating_add(offset as usize)
        .min(max)
        .min(u32::MAX as usize) as u32
}

/// A search request that can be relayed to a peer.
pub(super) trait Relayed: Clone + Send + Sync + 'static {
    /// The request as relayed for `relay`'s user: this node only.
    fn localised(self, relay: Option<pb::OnBehalfOf>) -> Self;
}

macro_rules! relayed {
    ($($t:ty),*) => {$(
        impl Relayed for $t {
            fn localised(mut self, relay: Option<pb::OnBehalfOf>) -> Self {
                self.scope = pb::Scope::Local as i32;
                self.on_behalf_of = relay;
                self
            }
        }
    )*};
}

relayed!(
    pb::VrmTimelineRequest,
    pb::VrmSearchRequest,
    pb::GeoSearchRequest,
    pb::VehicleSearchRequest,
    pb::CameraSearchRequest,
    pb::HotSpotsRequest,
    pb::CameraHealthRequest,
    pb::AlibiRequest,
    pb::SubjectProfileRequest,
    pb::PatternRequest,
    pb::ResultsRequest,
    pb::TransparencyRequest,
    pb::SitesRequest
);

/// The RPC a relayed search calls on a peer.
pub(super) type RelayCall<R> = fn(
    pb::search_client::SearchClient<tonic::transport::Channel>,
    Request<R>,
) -> futures::future::BoxFuture<
    'static,
    Result<Response<tonic::Streaming<pb::SearchChunk>>, Status>,
>;

/// What a national search reports about itself.
pub(super) struct National {
    pub(super) user: Principal,
    pub(super) access: Option<pb::AccessContext>,
    pub(super) action: &'static str,
    pub(super) query: serde_json::Value,
    pub(super) limit: usize,
    /// For a geographic ALL search over this many areas: the nodes answered
    /// ANY, and only vehicles seen in every area (on any node) are kept.
    pub(super) all_areas: Option<usize>,
    /// Merge in VRM-search ranking instead of capture time.
    pub(super) ranked: bool,
    /// Rows of the merged result to skip first (paging); every node was
    /// asked for its first `offset + limit` rows.
    pub(super) offset: usize,
}

/// A national answer's merged rows on their way to the user, and what is
/// known of them for the summary, the audit and the case register.
pub(super) struct Streamed {
    pub(super) node: String,
    pub(super) tx: mpsc::Sender<Result<pb::SearchChunk, Status>>,
    pub(super) chunk: Vec<pb::ReadRow>,
    pub(super) rows: u64,
    pub(super) forces: std::collections::BTreeMap<String, u64>,
    pub(super) cameras: std::collections::BTreeSet<(String, String)>,
    /// The rows other nodes returned, for the case register.
    pub(super) remote: Vec<CaseRead>,
    /// Per-VRM summaries of the rows sent.
    pub(super) page: PageVrms,
    /// Writes the search's opening audit entry: run (once) before the first
    /// chunk leaves.
    pub(super) opener: Option<Opener>,
    /// The user went away before the end (or the audit failed).
    pub(super) gone: bool,
}

/// Writes a search's opening audit entry (blocking).
pub(super) type Opener = Box<dyn FnOnce() -> Result<u64, Status> + Send>;

impl Streamed {
    pub(super) fn new(
        node: &str,
        tx: mpsc::Sender<Result<pb::SearchChunk, Status>>,
        opener: Opener,
    ) -> Self {
        Self {
            node: node.to_string(),
            tx,
            chunk: Vec::with_capacity(CHUNK_ROWS),
            rows: 0,
            forces: Default::default(),
            cameras: Default::default(),
            remote: Vec::new(),
            page: PageVrms::default(),
            opener: Some(opener),
            gone: false,
        }
    }

    /// Passes a row on (a chunk at a time); false once the user has gone.
    pub(super) async fn push(&mut self, row: pb::ReadRow) -> bool {
        if let Some(p) = &row.provenance {
            *self.forces.entry(p.owning_force.clone()).or_default() += 1;
            self.cameras
                .insert((p.owning_force.clone(), p.camera_id.clone()));
            if p.node != self.node {
                self.remote.extend(CaseRead::of(&row));
            }
        }
        self.rows += 1;
        self.page.add(&row);
        self.chunk.push(row);
        if self.chunk.len() == CHUNK_ROWS {
            self.flush().await;
        }
        !self.gone
    }

    /// Sends the rows held.
    pub(super) async fn flush(&mut self) {
        if self.chunk.is_empty() || self.gone {
            return;
        }
        if let Some(open) = self.opener.take() {
            let opened = tokio::task::spawn_blocking(open).await.unwrap_or_else(|e| {
                Err(ServiceError::Internal(format!("audit task failed: {e}")).into())
            });
            if let Err(e) = opened {
                let _ = self.tx.send(Err(e)).await;
                self.gone = true;
                return;
            }
        }
        let rows = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_ROWS));
        self.gone = self.tx.send(Ok(rows_chunk(rows))).await.is_err();
    }
}

/// The outcome of a peer skipped: its advertised holdings cannot match.
pub(super) fn skipped_outcome(node: String) -> pb::NodeOutcome {
    pb::NodeOutcome {
        node,
        ok: true,
        skipped: true,
        ..Default::default()
    }
}

/// Keeps the rows of vehicles seen in all `n` areas (each row names the
/// areas it falls in).
pub(super) fn keep_all(rows: Vec<pb::ReadRow>, n: usize) -> Vec<pb::ReadRow> {
    let mut seen: std::collections::HashMap<&str, std::collections::BTreeSet<u32>> =
        std::collections::HashMap::new();
    for r in &rows {
        seen.entry(r.vrm.as_str())
            .or_default()
            .extend(r.areas.iter().copied());
    }
    let everywhere: std::collections::HashSet<String> = seen
        .into_iter()
        .filter(|(_, a)| a.len() == n)
        .map(|(v, _)| v.to_string())
        .collect();
    rows.into_iter()
        .filter(|r| everywhere.contains(&r.vrm))
        .collect()
}

impl SearchService {
    /// A search's national scope, its page size (a limit over the node's
    /// maximum is refused, and audited), and the request to run here:
    /// nationally every node is asked for its first `offset + limit` rows,
    /// so that the merged page is exact.
    pub(super) async fn paged<T, R: Paged + Clone>(
        &self,
        req: &Request<T>,
        search: &str,
        scope: i32,
        relayed: bool,
        q: &R,
    ) -> Result<(Option<(Arc<Federation>, Principal)>, usize, R), Status> {
        let national = self.national_scope(req, scope, relayed).await?;
        let (offset, limit) = q.page();
        let limit = match self.limit(limit) {
            Ok(limit) => limit,
            Err(status) => return Err(self.refuse_early(req, search, status).await),
        };
        let mut asked = q.clone();
        if national.is_some() {
            asked.set_page(0, widen(limit, offset, self.max_limit));
        }
        Ok((national, limit, asked))
    }

    /// Whether a request runs nationally (fanned out to the peers): not when
    /// it asks for this node only, is relayed by a peer, or there are no
    /// peers. A national search needs a national role.
    pub(super) async fn national_scope<T>(
        &self,
        req: &Request<T>,
        scope: i32,
        relayed: bool,
    ) -> Result<Option<(Arc<Federation>, Principal)>, Status> {
        let Some(federation) = self
            .federation
            .clone()
            .filter(|f| !f.peers.is_empty() && !relayed && scope != pb::Scope::Local as i32)
        else {
            return Ok(None);
        };
        let user = caller(req)?.principal;
        if let Principal::User { roles, .. } = &user
            && let Err(e) = self.governance.policy.check_national(roles)
        {
            let status = ServiceError::denied(e.to_string());
            let what = Audited::default();
            let g = &self.governance;
            return Err(g
                .refuse(&Actor::of(&user), "search.national", &what, status)
                .await);
        }
        Ok(Some((federation, user)))
    }

    /// Merges this node's answer (`local`) with the `peers`' answers to
    /// `call` as they stream in ([`Merge`]: time-ordered or ranked rows, a
    /// read held twice kept once), streams the merged rows on, then audits
    /// the national answer, registers the peers' rows under the case, and
    /// ends with the per-VRM summaries and the summary naming every node's
    /// outcome (partial if one failed; `skipped` ones could not
    /// contribute). A national ALL search is the exception that cannot
    /// stream: whether a vehicle was in every area is known only once every
    /// node has answered.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn national(
        &self,
        n: National,
        local: Response<ChunkStream>,
        federation: Arc<Federation>,
        peers: Vec<crate::federation::Peer>,
        skipped: Vec<String>,
        call: PeerCall,
    ) -> Result<Response<ChunkStream>, Status> {
        let node = self.node.clone();
        let governance = self.governance.clone();
        let (mut access, _) = self.governance.context(n.access.as_ref())?;
        let actor = Actor::of(&n.user);
        let given = n.access.clone().unwrap_or_default();
        let case = self.case_of(&actor, &access.case_ref, &given, None)?;
        access.case_ref = crate::cases::name_for(&actor, &case);
        let (tx, rx) = mpsc::channel::<Result<pb::SearchChunk, Status>>(4);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut sources = vec![Source::local(&node, local.into_inner())];
            sources.extend(federation.sources(&peers, call));
            let order = if n.ranked { Order::Rank } else { Order::Time };
            let mut merge = Merge::new(order, sources);
            let opener: Opener = {
                let (g, actor, action) = (governance.clone(), actor.clone(), n.action);
                let opened = Audited {
                    access: access.clone(),
                    query: json!({"national": true, "search": n.query.clone()}),
                    returned: Vec::new(),
                };
                Box::new(move || {
                    g.record_blocking(g.entry(
                        &actor,
                        &format!("{action}.opened"),
                        &opened,
                        Outcome::Ok,
                    ))
                })
            };
            let mut out = Streamed::new(&node, tx, opener);
            let upto = n.offset.saturating_add(n.limit);
            let (mut cut, mut all_total) = (false, None);
            if let Some(areas) = n.all_areas {
                let mut rows = Vec::new();
                while let Some(r) = merge.next().await {
                    rows.push(r);
                }
                let kept = keep_all(rows, areas);
                (cut, all_total) = (kept.len() > upto, Some(kept.len()));
                for row in kept.into_iter().take(upto).skip(n.offset) {
                    if !out.push(row).await {
                        break;
                    }
                }
            } else {
                let mut taken = 0;
                while let Some(row) = merge.next().await {
                    if taken == upto {
                        cut = true;
                        break;
                    }
                    taken += 1;
                    if taken > n.offset && !out.push(row).await {
                        break;
                    }
                }
            }
            out.flush().await;
            // The peers' summaries (after the rows not taken), unless the
            // user has gone: then the calls are dropped.
            let mut ended = if out.gone {
                None
            } else {
                match merge.finish().await {
                    Ok(e) => Some(e),
                    Err(e) => {
                        let _ = out.tx.send(Err(e)).await;
                        return;
                    }
                }
            };
            let mut outcomes = ended
                .as_mut()
                .map(|e| std::mem::take(&mut e.outcomes))
                .unwrap_or_default();
            if let Some(e) = &ended {
                federation.note_currency(&outcomes, &e.stale);
            }
            outcomes.extend(skipped.into_iter().map(skipped_outcome));
            let audited = Audited {
                access: access.clone(),
                query: json!({"national": true, "search": n.query,
                    "nodes": outcomes.iter().map(|o| json!({"node": o.node, "ok": o.ok, "skipped": o.skipped})).collect::<Vec<_>>()}),
                returned: out
                    .forces
                    .iter()
                    .filter_map(|(f, n)| ForceId::new(f).ok().map(|id| (id, *n)))
                    .collect(),
            };
            let outcome = if out.gone {
                Outcome::Failed("the client went away before the end".into())
            } else {
                Outcome::Ok
            };
            let g = governance.clone();
            let (action, remote) = (n.action, std::mem::take(&mut out.remote));
            let written = tokio::task::spawn_blocking(move || {
                g.record_search_blocking(
                    g.entry(&actor, action, &audited, outcome),
                    Some(&case),
                    &remote,
                )
                .map(|_| ())
            })
            .await
            .unwrap_or_else(|e| {
                Err(ServiceError::Internal(format!("audit task failed: {e}")).into())
            });
            if let Err(e) = written {
                let _ = out.tx.send(Err(e)).await;
                return;
            }
            let Some(mut ended) = ended else { return };
            // Summaries of the rows sent only (a page's, not every match's).
            let vrms = (n.all_areas.is_some() || !ended.vrms.is_empty())
                .then(|| std::mem::take(&mut out.page).into_pb().vrms);
            let summary = pb::SearchSummary {
                rows: out.rows,
                forces: out
                    .forces
                    .iter()
                    .map(|(force, rows)| pb::ForceCount {
                        force: force.clone(),
                        rows: *rows,
                    })
                    .collect(),
                cameras: out.cameras.len() as u64,
                elapsed_us: started.elapsed().as_micros() as u64,
                truncated: ended.truncated || cut,
                total_rows: all_total.map_or(ended.total_rows, |t| t as u64),
                clipped_from: ended.clipped_from,
                partial: outcomes.iter().any(|o| !o.ok),
                nodes: outcomes,
                silent_cameras: std::mem::take(&mut ended.silent_cameras),
                stale: std::mem::take(&mut ended.stale),
            };
            if let Some(vrms) = vrms {
                let chunk = pb::search_chunk::Chunk::Vrms(pb::VrmSummaries { vrms });
                if out
                    .tx
                    .send(Ok(pb::SearchChunk { chunk: Some(chunk) }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = out
                .tx
                .send(Ok(pb::SearchChunk {
                    chunk: Some(pb::search_chunk::Chunk::Summary(summary)),
                }))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// This node's answer (`local`), and nationally the answers of the
    /// peers to `asked` (relayed for the user, this node only): of every
    /// peer that can hold reads within `reach`, or for a search in `areas`
    /// (which set its place and window) those whose reads can be there.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fan_out_search<R: Relayed>(
        &self,
        local: Response<ChunkStream>,
        national: Option<(Arc<Federation>, Principal)>,
        areas: &[pb::Area],
        mut reach: Reach,
        n: impl FnOnce(Principal) -> National,
        asked: R,
        call: RelayCall<R>,
    ) -> Result<Response<ChunkStream>, Status> {
        let Some((federation, user)) = national else {
            return Ok(local);
        };
        let Some(relay) = on_behalf_of(&user, &self.node) else {
            return Ok(local);
        };
        let circles: Vec<Circle> = areas
            .iter()
            .filter_map(|a| {
                if a.polygon.trim().is_empty() {
                    GeoPoint::new(a.lat, a.lon)
                        .and_then(|c| Circle::new(c, a.radius_m))
                        .ok()
                } else {
                    Polygon::parse(&a.polygon)
                        .and_then(Shape::polygon)
                        .ok()
                        .map(|s| *s.scan_circle())
                }
            })
            .collect();
        if !circles.is_empty() {
            let points: Vec<GeoPoint> = circles.iter().map(Circle::centre).collect();
            let metres = circles.iter().map(Circle::radius_m).fold(0.0, f64::max);
            reach.near = Some((points, metres));
            // The areas' windows together (an unreadable one bounds
            // nothing: the peer is asked, and refuses it as this node did).
            let times: Option<Vec<(Timestamp, Timestamp)>> = areas
                .iter()
                .map(|a| Some((pb_time(&a.from)?, pb_time(&a.to)?)))
                .collect();
            reach.window = times
                .and_then(|w| Some((w.iter().map(|x| x.0).min()?, w.iter().map(|x| x.1).max()?)));
        }
        let (peers, skipped) = federation.peers_for(&reach).await;
        let remote = asked.localised(Some(relay));
        let deadline = federation.deadline;
        let peer_call: PeerCall = Arc::new(move |c| {
            let mut r = Request::new(remote.clone());
            r.set_timeout(deadline);
            call(c, r)
        });
        self.national(n(user), local, federation, peers, skipped, peer_call)
            .await
    }
}

/// A search request that pages its rows.
pub(super) trait Paged {
    /// Its offset and limit.
    fn page(&self) -> (u32, u32);
    /// Sets its offset and limit.
    fn set_page(&mut self, offset: u32, limit: u32);
}

macro_rules! paged {
    ($($t:ty),*) => {$(
        impl Paged for $t {
            fn page(&self) -> (u32, u32) {
                (self.offset, self.limit)
            }
            fn set_page(&mut self, offset: u32, limit: u32) {
                self.offset = offset;
                self.limit = limit;
            }
        }
    )*};
}

paged!(
    pb::GeoSearchRequest,
    pb::VrmSearchRequest,
    pb::VehicleSearchRequest,
    pb::CameraSearchRequest
);

/// An analysis answer that names the nodes whose store, a replica of the
/// log, was behind it when they answered.
pub(super) trait Staled {
    fn stale_mut(&mut self) -> &mut Vec<pb::StaleReplica>;
}

macro_rules! staled {
    ($($t:ty),*) => {$(
        impl Staled for $t {
            fn stale_mut(&mut self) -> &mut Vec<pb::StaleReplica> {
                &mut self.stale
            }
        }
    )*};
}

staled!(
    pb::AlibiResponse,
    pb::SubjectProfileResponse,
    pb::PatternResponse,
    pb::ResultsResponse,
    pb::TransparencyResponse,
    pb::SitesResponse,
    pb::HotSpotsResponse,
    pb::CameraHealthResponse
);

/// An analysis answer completed where it was asked: every node's outcome,
/// whether any part is missing, the nodes that answered from a replica
/// behind the log, this node's name and the time taken.
pub(super) trait Concluded {
    fn conclude(&mut self, gathered: Gathered, node: &str, started: std::time::Instant);
}

macro_rules! concluded {
    ($($t:ty),*) => {$(
        impl Concluded for $t {
            fn conclude(
                &mut self,
                gathered: Gathered,
                node: &str,
                started: std::time::Instant,
            ) {
                self.partial = gathered.nodes.iter().any(|o| !o.ok);
                self.nodes = gathered.nodes;
                self.stale = gathered.stale;
                self.node = node.to_string();
                self.elapsed_us = started.elapsed().as_micros() as u64;
            }
        }
    )*};
}

concluded!(
    pb::AlibiResponse,
    pb::SubjectProfileResponse,
    pb::PatternResponse,
    pb::ResultsResponse,
    pb::TransparencyResponse,
    pb::SitesResponse
);

/// A peer's answer to an Analysis RPC: its name, the answer or why none
/// came, and the replica that answered in its place if one did.
pub(super) type Answered<T> = (String, Result<T, String>, Option<crate::hedge::Replaced>);

/// What a national analysis learnt of its nodes besides their parts.
#[derive(Default)]
pub(super) struct Gathered {
    /// Every node's outcome (`rows` as the part's count gives it), a peer
    /// that failed named with why.
    pub(super) nodes: Vec<pb::NodeOutcome>,
    /// The nodes whose part came from a replica behind the log.
    pub(super) stale: Vec<pb::StaleReplica>,
}

/// A local analysis's one part, as [`gather`] gives parts: no node
/// outcomes (none were asked), and this node's notice if it is behind.
pub(super) fn alone<T: Staled>(mut here: T) -> (Vec<T>, Gathered) {
    let stale = std::mem::take(here.stale_mut());
    (
        vec![here],
        Gathered {
            nodes: Vec::new(),
            stale,
        },
    )
}

/// A national analysis's parts: this node's answer first, then each peer's
/// that came; and what was learnt of the nodes ([`Gathered`]).
pub(super) fn gather<T: Staled>(
    node: &str,
    mut local: T,
    answers: Vec<Answered<T>>,
    count: impl Fn(&T) -> u64,
) -> (Vec<T>, Gathered) {
    let mut stale = std::mem::take(local.stale_mut());
    let mut outcomes = vec![pb::NodeOutcome {
        node: node.to_string(),
        ok: true,
        rows: count(&local),
        ..Default::default()
    }];
    let mut parts = vec![local];
    for (node, answer, replaced) in answers {
        let (replica, replica_reason) = replaced.map(|r| (r.by, r.why)).unwrap_or_default();
        let mut o = pb::NodeOutcome {
            node,
            replica,
            replica_reason,
            ..Default::default()
        };
        match answer {
            Ok(mut a) => {
                (o.ok, o.rows) = (true, count(&a));
                stale.append(a.stale_mut());
                parts.push(a);
            }
            Err(e) => o.error = e,
        }
        outcomes.push(o);
    }
    (
        parts,
        Gathered {
            nodes: outcomes,
            stale,
        },
    )
}

/// What the peers contributed to a national analysis: rows per owning
/// force, and the reads among them (for the case register).
pub(super) struct PeersPart {
    pub(super) returned: Vec<(ForceId, u64)>,
    pub(super) reads: Vec<crate::disclosure::CaseRead>,
}

impl SearchService {
    /// This node's notice if its store, a replica of the log, is behind
    /// it: carried by every analysis answer it computes.
    pub(super) fn stale_here(&self) -> Vec<pb::StaleReplica> {
        self.replication
            .as_ref()
            .and_then(|r| r.stale())
            .into_iter()
            .collect()
    }

    /// Asks `peers` themselves, never their replicas, an Analysis RPC
    /// whose answer comes from what each node alone holds (its audit
    /// chain, its alert log: not replicated), with `q` relayed for `user`.
    pub(super) async fn ask_peers_themselves<R, T, F, Fut>(
        &self,
        federation: &Federation,
        peers: &[crate::federation::Peer],
        user: &Principal,
        q: &R,
        call: F,
    ) -> Vec<Answered<T>>
    where
        R: Relayed + Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(pb::analysis_client::AnalysisClient<tonic::transport::Channel>, R) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = Result<Response<T>, Status>> + Send + 'static,
    {
        let ask = self.analysis_call(user, q, call);
        federation
            .call_peers(peers, ask)
            .await
            .into_iter()
            .map(|(name, answer)| (name, answer, None))
            .collect()
    }

    /// Asks `peers` an Analysis RPC (`call`) over the reads, with `q`
    /// relayed for `user`, each or its replica as a search would: each
    /// peer's name, its answer or why none came, and the replica that
    /// answered in its place.
    pub(super) async fn ask_peers<R, T, F, Fut>(
        &self,
        federation: &Federation,
        peers: &[crate::federation::Peer],
        user: &Principal,
        q: &R,
        call: F,
    ) -> Vec<Answered<T>>
    where
        R: Relayed + Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(pb::analysis_client::AnalysisClient<tonic::transport::Channel>, R) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = Result<Response<T>, Status>> + Send + 'static,
    {
        let ask = self.analysis_call(user, q, call);
        federation.call_peers_or_replicas(peers, ask).await
    }

    /// One peer's call of an Analysis RPC: `q` relayed for `user`, made
    /// by `call` on a client of the peer's channel.
    fn analysis_call<R, T, F, Fut>(
        &self,
        user: &Principal,
        q: &R,
        call: F,
    ) -> impl Fn(crate::federation::Peer) -> futures::future::BoxFuture<'static, Result<T, Status>>
    + Send
    + Sync
    + 'static
    where
        R: Relayed + Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(pb::analysis_client::AnalysisClient<tonic::transport::Channel>, R) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = Result<Response<T>, Status>> + Send + 'static,
    {
        let remote = q.clone().localised(on_behalf_of(user, &self.node));
        move |p| {
            let client = pb::analysis_client::AnalysisClient::new(p.channel())
                .max_decoding_message_size(64 << 20);
            let answer = call(client, remote.clone());
            Box::pin(async move { answer.await.map(Response::into_inner) })
        }
    }

    /// Audits what the peers contributed to a national analysis (`returned`
    /// per owning force) and registers the reads among it (`reads`) under
    /// the case, durably, before this node passes it on: each peer audited
    /// and registered its own part for the relayed user, this node's part
    /// was audited when it was computed.
    pub(super) async fn audit_peers_part(
        &self,
        actor: &Actor,
        case: Option<crate::cases::CaseId>,
        access: Option<&pb::AccessContext>,
        action: &str,
        query: serde_json::Value,
        part: PeersPart,
    ) -> Result<(), Status> {
        let PeersPart { returned, reads } = part;
        let (access, _) = self.governance.context(access)?;
        let what = Audited {
            access,
            query,
            returned,
        };
        let g = self.governance.clone();
        let entry = g.entry(actor, action, &what, Outcome::Ok);
        tokio::task::spawn_blocking(move || g.record_search_blocking(entry, case.as_ref(), &reads))
            .await
            .map_err(|e| Status::from(ServiceError::internal(format!("audit task failed: {e}"))))?
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(node: &str, behind: Option<u64>) -> pb::AlibiResponse {
        pb::AlibiResponse {
            node: node.into(),
            stale: behind
                .map(|behind| pb::StaleReplica {
                    node: node.into(),
                    behind,
                    problem: String::new(),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn every_part_behind_the_log_is_named_once_and_its_part_kept() {
        let (parts, g) = gather(
            "node-1",
            part("node-1", Some(3)),
            vec![
                ("node-2".into(), Ok(part("node-2", None)), None),
                ("node-3".into(), Ok(part("node-3", Some(40))), None),
                ("node-4".into(), Err("refused".into()), None),
            ],
            |_| 0,
        );
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.stale.is_empty()));
        let named: Vec<(&str, u64)> = g
            .stale
            .iter()
            .map(|s| (s.node.as_str(), s.behind))
            .collect();
        assert_eq!(named, [("node-1", 3), ("node-3", 40)]);
        assert_eq!(g.nodes.len(), 4);
        let mut answer = pb::AlibiResponse::default();
        answer.conclude(g, "node-1", std::time::Instant::now());
        assert_eq!(answer.stale.len(), 2);
        assert!(answer.partial);

        let (parts, g) = alone(part("node-1", Some(1)));
        assert!(parts[0].stale.is_empty() && g.nodes.is_empty());
        assert_eq!(g.stale.len(), 1);
    }
}
