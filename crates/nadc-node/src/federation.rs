//! Federation: the node's peers, and national searches fanned out to them.
//!
//! A node reaches its peers over mutual TLS with its own node certificate,
//! and talks to a peer only once its server certificate names the peer
//! configured at that address (`nadc://node/<name>`). A peer accepts a
//! relayed search only from a node certificate of a configured peer (a BOF
//! or user certificate can never relay), and only for a user of a force that
//! peer is configured to relay (`relays`) holding roles it may relay
//! (`relay_roles`); it applies its own policy to that user and audits the
//! search as its own.
//!
//! Each remote call has a deadline: a slow or dead peer does not hold the
//! search hostage; the answer comes back by the deadline marked partial,
//! naming each node that failed and why.
//!
//! Merging is exact and streams ([`crate::merge`]): rows are merged in the
//! local order (capture time, then node, then sequence number; or a VRM
//! search's ranking) as they arrive, rows of one read held on two nodes are
//! kept once, the limit is applied to the merged result, and counts are
//! summed.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use nadc_core::{Principal, Role};
use nadc_proto::pb;
use rustls_pki_types::ServerName;
use serde::Deserialize;
use tokio::net::TcpStream;
use tonic::Status;
use tonic::transport::{Channel, Uri};

use futures::StreamExt;

use crate::hedge::{Chunks, Hedge, Replaced};
use crate::merge::Source;
use crate::tls::NodeTls;

pub use crate::relay::{RelayError, on_behalf_of, relayed_user};

/// A peer in the node's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's node name, as in its certificate (`nadc://node/NAME`).
    pub name: String,
    /// Its address, `https://HOST:PORT`.
    pub address: String,
    /// The peer this node is a replica of (holding the same reads): it is
    /// not asked on its own, but in that peer's place when the peer fails
    /// before answering, or is slower than `federation_hedge_ms`.
    #[serde(default)]
    pub replica_of: Option<String>,
    /// The forces whose users this peer may relay searches for (`["*"]`:
    /// any; `[]`: none). Unset: any force, unless CA bindings are
    /// configured (`[[trust.issuers]]`), which make it required.
    #[serde(default)]
    pub relays: Option<Vec<String>>,
    /// The roles a user relayed by this peer may hold; a relay naming any
    /// other is refused. Default: the searching roles.
    #[serde(default = "crate::relay::default_relay_roles")]
    pub relay_roles: Vec<Role>,
}

impl PeerConfig {
    /// A peer (not a replica) named `name` at `address`, relaying users of
    /// any force with the searching roles.
    pub fn new(name: &str, address: &str) -> Self {
        Self {
            name: name.to_string(),
            address: address.to_string(),
            replica_of: None,
            relays: None,
            relay_roles: crate::relay::default_relay_roles(),
        }
    }
}

/// A connected (lazily) peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its node name.
    pub name: String,
    channel: Channel,
}

impl Peer {
    /// The channel to it.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// The node's peers and how long to wait for them.
#[derive(Debug)]
pub struct Federation {
    /// This node's name.
    pub node: String,
    /// The peers searches fan out to.
    pub peers: Vec<Peer>,
    /// Each peer's replica, by the peer's name.
    replicas: std::collections::HashMap<String, Peer>,
    /// When to ask a replica instead.
    hedge: Arc<Hedge>,
    /// Deadline for each remote call.
    pub deadline: Duration,
    /// What each peer advertised holding, and when it was asked.
    holdings: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Holdings)>>,
    /// What each peer and replica may relay, by name.
    relay: std::collections::HashMap<String, crate::relay::RelayRule>,
    /// What each peer's or replica's last answer said of its store: when,
    /// and its notice if it was behind the log.
    currency: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, Option<pb::StaleReplica>)>,
    >,
}

/// How long what a node's answer said of its currency is believed.
const CURRENCY_FOR: Duration = Duration::from_secs(60);

/// How the node calls its peers.
#[derive(Clone, Copy, Debug)]
pub struct FederationOptions {
    /// Deadline for each peer's answer.
    pub deadline: Duration,
    /// Ask a peer's replica too when the peer has not begun to answer by
    /// then (none: only when it fails).
    pub hedge_after: Option<Duration>,
    /// Calls in flight to one peer at once; more wait their turn (within
    /// their deadline), so one node's searches cannot flood a peer.
    pub peer_concurrency: usize,
}

/// What a peer advertises holding ([`pb::NodeInfoResponse`]).
#[derive(Clone, Debug, Default)]
struct Holdings {
    /// The coarse cells its reads lie in, each as its centre and the
    /// distance from it to its farthest vertex, in metres (none: not
    /// known, from a release that told its cameras' cells instead).
    cells: Option<Vec<(nadc_core::GeoPoint, f64)>>,
    /// Its earliest capture time (none while it holds nothing).
    earliest: Option<nadc_core::Timestamp>,
    /// The forces it holds reads of.
    forces: Vec<String>,
}

/// Where a search's reads can be, as far as the search itself bounds it:
/// a peer that cannot hold any such read is skipped. Nothing set bounds
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// Near these points, within this many metres.
    pub near: Option<(Vec<nadc_core::GeoPoint>, f64)>,
    /// Captured in this window.
    pub window: Option<(nadc_core::Timestamp, nadc_core::Timestamp)>,
    /// Owned by one of these forces.
    pub forces: Option<Vec<String>>,
}

impl Reach {
    /// Reads captured in `window`, if the search bounds one.
    pub fn in_window(window: Option<(nadc_core::Timestamp, nadc_core::Timestamp)>) -> Self {
        Self {
            window,
            ..Self::default()
        }
    }

    /// Whether the search is bounded at all (else every peer is asked,
    /// without asking what it holds).
    fn bounds(&self) -> bool {
        self.near.is_some() || self.window.is_some() || self.forces.is_some()
    }
}

/// Whether a peer with `h` can hold reads within `reach`. Only the start
/// of its data bounds time: its latest read moves on with every batch it
/// takes in, while its earliest moves only as retention deletes. Holdings
/// are cached for a minute, so what a peer took in within that minute and
/// that changed them can be missed by a skip: a BOF's backlog older than
/// its earliest read, a force's first reads on it, a read in a coarse cell
/// none of its reads was in before (a mobile unit's first minute in a new
/// area).
fn may_hold(h: &Holdings, reach: &Reach) -> bool {
    let in_time = match (reach.window, h.earliest) {
        (Some((_, to)), Some(earliest)) => to >= earliest,
        _ => true,
    };
    // A read in a cell lies within the cell's radius of its centre (the
    // cell's edges are great-circle arcs, so its farthest point is a
    // vertex), so by the triangle inequality a search point within `reach`
    // of the read is within `reach` plus that radius of the centre. The
    // room on the radius covers a cell drawn on the sphere measured on the
    // ellipsoid (`distance_m` is geodesic).
    let in_place = match (&reach.near, &h.cells) {
        (Some((points, reach_m)), Some(cells)) => cells.iter().any(|(centre, radius_m)| {
            let room = reach_m + radius_m * 1.02 + 100.0;
            points.iter().any(|pt| pt.distance_m(*centre) <= room)
        }),
        _ => true,
    };
    let of_force = match &reach.forces {
        Some(forces) => forces.iter().any(|f| h.forces.contains(f)),
        None => true,
    };
    in_time && in_place && of_force
}

/// A channel to the peer at `address` (`https://HOST:PORT`) that connects
/// on first use, and again after a failure, over TLS with the node's current
/// client configuration ([`NodeTls::client`]): the peer's certificate is
/// checked against the node's CAs and CRLs, and the node presents its current
/// certificate.
fn peer_channel(
    name: &str,
    address: &str,
    tls: Arc<NodeTls>,
    concurrency: usize,
) -> Result<Channel, nadc_bof::ClientError> {
    let bad = || nadc_bof::ClientError::BadAddress(address.to_string());
    let uri: Uri = address.parse().map_err(|_| bad())?;
    let (Some("https"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad());
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string()).map_err(|_| bad())?;
    // tonic would do TLS itself for an https URI, with a configuration of
    // its own making; the connector does it instead, so the endpoint's URI
    // is plain http. The connection is TLS all the same.
    let plain = Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query("/")
        .build()
        .map_err(|_| bad())?;
    let connector = PeerConnector {
        addr: authority.to_string(),
        server_name,
        expected: name.to_string(),
        tls,
    };
    Ok(tonic::transport::Endpoint::from(plain)
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_adaptive_window(true)
        .concurrency_limit(concurrency.max(1))
        .connect_with_connector_lazy(connector))
}

/// Makes the TCP and TLS connection to one peer.
#[derive(Clone)]
struct PeerConnector {
    addr: String,
    server_name: ServerName<'static>,
    /// The configured peer's node name, which its certificate must carry.
    expected: String,
    tls: Arc<NodeTls>,
}

/// Checks that the certificate a peer presented names the configured node
/// (`nadc://node/<expected>`): anything else at that address (another node,
/// a BOF or user certificate) is not the peer, whatever CA issued it.
fn check_peer_identity(
    expected: &str,
    addr: &str,
    presented: Option<&rustls_pki_types::CertificateDer<'_>>,
) -> Result<(), std::io::Error> {
    let presented = match presented.map(|c| nadc_pki::principal_from_der(c.as_ref())) {
        Some(Ok(Principal::Node { name })) if name == expected => return Ok(()),
        Some(Ok(p)) => nadc_pki::principal_uris(&p)
            .into_iter()
            .next()
            .unwrap_or_default(),
        Some(Err(e)) => format!("a certificate with no readable nadc principal ({e})"),
        None => "no certificate".into(),
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "peer {expected} at {addr} is not the configured peer: expected \
             nadc://node/{expected}, presented {presented}"
        ),
    ))
}

impl tower::Service<Uri> for PeerConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (addr, name) = (self.addr.clone(), self.server_name.clone());
        let expected = self.expected.clone();
        let connector = tokio_rustls::TlsConnector::from(self.tls.client());
        Box::pin(async move {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            // Nothing is sent before the peer is known to be the one
            // configured.
            let presented = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            check_peer_identity(&expected, &addr, presented)?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

/// Why a peer's answer is missing when the deadline passed.
pub fn deadline_missed(deadline: Duration) -> String {
    format!("no answer within the {} ms deadline", deadline.as_millis())
}

/// A peer's answer within `deadline`, or why not in words: its error, or
/// the deadline.
async fn within<T>(
    deadline: Duration,
    answer: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(s)) => Err(nadc_bof::describe_status(&s)),
        Err(_) => Err(deadline_missed(deadline)),
    }
}

/// The messages of a streaming call's answer, or its error.
fn streamed<T: Send + 'static>(
    call: impl std::future::Future<Output = Result<tonic::Response<tonic::Streaming<T>>, Status>>
    + Send
    + 'static,
) -> Chunks<T> {
    futures::stream::once(call)
        .flat_map(|answer| match answer {
            Ok(r) => r.into_inner().boxed(),
            Err(s) => futures::stream::iter([Err(s)]).boxed(),
        })
        .boxed()
}

/// A call of one search on a peer.
pub type PeerCall = std::sync::Arc<
    dyn Fn(
            pb::search_client::SearchClient<Channel>,
        ) -> futures::future::BoxFuture<
            'static,
            Result<tonic::Response<tonic::Streaming<pb::SearchChunk>>, Status>,
        > + Send
        + Sync,
>;

impl Federation {
    /// Connects (lazily) to each peer and replica with this node's
    /// certificate (the one current in `tls` at each connection, so a
    /// reload reaches peers too). A replica must name a configured peer
    /// (not a replica), and a peer has at most one.
    pub fn new(
        node: String,
        configured: &[PeerConfig],
        tls: Arc<NodeTls>,
        options: FederationOptions,
    ) -> Result<Self, nadc_bof::ClientError> {
        let connect = |p: &PeerConfig| -> Result<Peer, nadc_bof::ClientError> {
            Ok(Peer {
                name: p.name.clone(),
                channel: peer_channel(&p.name, &p.address, tls.clone(), options.peer_concurrency)?,
            })
        };
        let mut relay = std::collections::HashMap::new();
        for p in configured {
            let rule = p.relay_rule().map_err(nadc_bof::ClientError::Input)?;
            if p.relays.is_none() {
                tracing::warn!(peer = %p.name,
                    "peer may relay searches for users of any force: set relays in its [[peers]] entry");
            }
            relay.insert(p.name.clone(), rule);
        }
        let mut peers = Vec::new();
        let mut replicas = std::collections::HashMap::new();
        for p in configured.iter().filter(|p| p.replica_of.is_none()) {
            peers.push(connect(p)?);
        }
        for p in configured {
            let Some(of) = &p.replica_of else { continue };
            let bad = |why: String| nadc_bof::ClientError::Input(format!("peer {}: {why}", p.name));
            if !peers.iter().any(|q: &Peer| &q.name == of) {
                return Err(bad(format!(
                    "replica_of names {of}, which is not a configured peer"
                )));
            }
            if replicas.insert(of.clone(), connect(p)?).is_some() {
                return Err(bad(format!(
                    "{of} has another replica already; give it one"
                )));
            }
        }
        Ok(Self {
            node,
            peers,
            replicas,
            hedge: Arc::new(Hedge::new(options.hedge_after)),
            deadline: options.deadline,
            holdings: Default::default(),
            currency: Default::default(),
            relay,
        })
    }

    /// What the peer or replica `name` may relay, if it is one.
    pub(crate) fn relay_rule(&self, name: &str) -> Option<&crate::relay::RelayRule> {
        self.is_peer(name).then(|| self.relay.get(name)).flatten()
    }

    /// Whether `name` is a configured peer or replica.
    pub fn is_peer(&self, name: &str) -> bool {
        self.peers
            .iter()
            .chain(self.replicas.values())
            .any(|p| p.name == name)
    }

    /// Notes which peers and replicas answered behind the log (`stale`)
    /// and which did not, from a national answer's outcomes: the next
    /// fan-out asks a peer's replica first while the peer is behind.
    pub fn note_currency(&self, outcomes: &[pb::NodeOutcome], stale: &[pb::StaleReplica]) {
        let now = std::time::Instant::now();
        let Ok(mut known) = self.currency.lock() else {
            return;
        };
        for o in outcomes.iter().filter(|o| o.ok && !o.skipped) {
            let who = if o.replica.is_empty() {
                &o.node
            } else {
                &o.replica
            };
            if self.is_peer(who) {
                let note = stale.iter().find(|s| &s.node == who).cloned();
                known.insert(who.clone(), (now, note));
            }
        }
    }

    /// Why to ask `replica` before `peer`: within the last minute the
    /// peer answered from behind the log and the replica did not (or has
    /// not answered since).
    fn prefer_replica(&self, peer: &str, replica: &str) -> Option<String> {
        let known = self.currency.lock().ok()?;
        let recent = |n: &str| {
            known
                .get(n)
                .filter(|(at, _)| at.elapsed() < CURRENCY_FOR)
                .map(|(_, note)| note.clone())
        };
        let Some(Some(behind)) = recent(peer) else {
            return None;
        };
        if let Some(Some(_)) = recent(replica) {
            return None;
        }
        let how = match behind.problem.as_str() {
            "" => format!("{} messages behind", behind.behind),
            p => format!("not applying the log: {p}"),
        };
        Some(format!(
            "{peer} answered from behind the log within the last minute ({how}); its replica {replica} did not"
        ))
    }

    /// `peer`'s answer as `ask` makes it, or its replica's in its place
    /// ([`Hedge`]); the slot is filled with the replica's name if it
    /// answered. A peer last seen behind the log is asked after its
    /// replica instead ([`Federation::prefer_replica`]).
    fn answer_of<T: Send + 'static>(
        &self,
        peer: &Peer,
        ask: impl Fn(&Peer) -> Chunks<T> + Send + Sync + 'static,
    ) -> (Chunks<T>, Arc<OnceLock<Replaced>>) {
        let slot = Arc::new(OnceLock::new());
        let Some(replica) = self.replicas.get(&peer.name).cloned() else {
            return (ask(peer), slot);
        };
        let replica_first = self.prefer_replica(&peer.name, &replica.name);
        let (hedge, peer, filled) = (self.hedge.clone(), peer.clone(), slot.clone());
        let opened = async move {
            match replica_first {
                Some(why) => {
                    let (chunks, replica_answered) = hedge
                        .open_replica_first(
                            (&replica.name, ask(&replica)),
                            (&peer.name, || ask(&peer)),
                        )
                        .await;
                    if replica_answered {
                        let _ = filled.set(Replaced {
                            by: replica.name.clone(),
                            why,
                        });
                    }
                    chunks
                }
                None => {
                    let (chunks, replaced) = hedge
                        .open((&peer.name, ask(&peer)), (&replica.name, || ask(&replica)))
                        .await;
                    if let Some(r) = replaced {
                        let _ = filled.set(r);
                    }
                    chunks
                }
            }
        };
        (futures::stream::once(opened).flatten().boxed(), slot)
    }

    /// Runs `call` on each of `peers` at once, each within the deadline:
    /// each peer's name with its answer, or why not (its error, or the
    /// deadline).
    pub async fn call_peers<T, F, Fut>(
        &self,
        peers: &[Peer],
        call: F,
    ) -> Vec<(String, Result<T, String>)>
    where
        F: Fn(Peer) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let deadline = self.deadline;
        let calls = peers.iter().map(|p| {
            let run = call(p.clone());
            let name = p.name.clone();
            async move { (name, within(deadline, run).await) }
        });
        futures::future::join_all(calls).await
    }

    /// Runs `call` on each of `peers` at once, or on its replica as a
    /// search would ([`Federation::answer_of`]: retried, hedged, the
    /// current one first), each within the deadline: each peer's name, its
    /// answer or why not, and the replica that answered in its place if
    /// one did.
    pub async fn call_peers_or_replicas<T, F, Fut>(
        &self,
        peers: &[Peer],
        call: F,
    ) -> Vec<(String, Result<T, String>, Option<Replaced>)>
    where
        T: Send + 'static,
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
    {
        let call = Arc::new(call);
        let deadline = self.deadline;
        let calls = peers.iter().map(|peer| {
            let call = call.clone();
            let (mut chunks, slot) = self.answer_of(peer, move |p| {
                futures::stream::once(call(p.clone())).boxed()
            });
            let name = peer.name.clone();
            async move {
                let answer = within(deadline, async move {
                    chunks
                        .next()
                        .await
                        .unwrap_or_else(|| Err(Status::unknown("the answer ended before it began")))
                })
                .await;
                (name, answer, slot.get().cloned())
            }
        });
        futures::future::join_all(calls).await
    }

    /// Each of `peers`' answer to a search `call` (or its replica's), as it
    /// streams in, each within the deadline from now: the merge's sources.
    pub fn sources(&self, peers: &[Peer], call: PeerCall) -> Vec<Source> {
        peers
            .iter()
            .map(|peer| {
                let call = call.clone();
                let (chunks, slot) = self.answer_of(peer, move |p| {
                    let client = pb::search_client::SearchClient::new(p.channel())
                        .max_decoding_message_size(64 << 20);
                    streamed(call(client))
                });
                Source::peer(&peer.name, chunks, self.deadline).answered_by(slot)
            })
            .collect()
    }

    /// Runs a convoy search on each of `peers` (or its replica), collecting
    /// each answer within the deadline, with the replica that answered in a
    /// peer's place if one did.
    pub async fn fan_out_convoy(
        &self,
        peers: &[Peer],
        req: pb::ConvoyRequest,
    ) -> Vec<(String, Result<ConvoyAnswer, String>, Option<Replaced>)> {
        let deadline = self.deadline;
        let calls = peers.iter().map(|peer| {
            let req = req.clone();
            let (chunks, slot) = self.answer_of(peer, move |p| {
                let mut c = pb::search_client::SearchClient::new(p.channel())
                    .max_decoding_message_size(64 << 20);
                let mut r = tonic::Request::new(req.clone());
                r.set_timeout(deadline);
                streamed(async move { c.convoy(r).await })
            });
            let name = peer.name.clone();
            async move {
                let result = within(deadline, collect_convoy(chunks)).await;
                (name, result, slot.get().cloned())
            }
        });
        futures::future::join_all(calls).await
    }

    /// The peers that can hold reads within `reach` (near the coarse cells
    /// their reads lie in, not before their earliest read, of a force they
    /// hold),
    /// and the others (skipped), from what each peer advertises. A peer
    /// whose holdings are not known yet is asked; one that cannot be asked
    /// is not skipped.
    pub async fn peers_for(&self, reach: &Reach) -> (Vec<Peer>, Vec<String>) {
        if !reach.bounds() {
            return (self.peers.clone(), Vec::new());
        }
        let mut asked = Vec::new();
        let mut skipped = Vec::new();
        for p in &self.peers {
            match self.holdings_of(p).await {
                Some(h) if !may_hold(&h, reach) => skipped.push(p.name.clone()),
                _ => asked.push(p.clone()),
            }
        }
        (asked, skipped)
    }

    /// What a peer advertises holding (cached for a minute).
    async fn holdings_of(&self, p: &Peer) -> Option<Holdings> {
        if let Ok(cache) = self.holdings.lock()
            && let Some((at, h)) = cache.get(&p.name)
            && at.elapsed() < Duration::from_secs(60)
        {
            return Some(h.clone());
        }
        let mut admin = pb::admin_client::AdminClient::new(p.channel.clone());
        let info = tokio::time::timeout(self.deadline, admin.node_info(pb::NodeInfoRequest {}))
            .await
            .ok()?
            .ok()?
            .into_inner();
        let h = Holdings {
            cells: info.cells_of_reads.then(|| cells_reach(&info.coarse_cells)),
            earliest: info.earliest.as_ref().and_then(nadc_proto::from_pb_time),
            forces: info.forces.into_iter().map(|f| f.force).collect(),
        };
        if let Ok(mut cache) = self.holdings.lock() {
            cache.insert(p.name.clone(), (std::time::Instant::now(), h.clone()));
        }
        Some(h)
    }
}

/// Each of `cells` (H3 indexes; any other number is left out) as its
/// centre and how far from it the cell reaches ([`cell_reach`]).
fn cells_reach(cells: &[u64]) -> Vec<(nadc_core::GeoPoint, f64)> {
    cells
        .iter()
        .filter_map(|c| h3o::CellIndex::try_from(*c).ok())
        .filter_map(cell_reach)
        .collect()
}

/// A cell's centre and how far from it the cell reaches: the distance to
/// its farthest vertex.
fn cell_reach(c: h3o::CellIndex) -> Option<(nadc_core::GeoPoint, f64)> {
    let point = |ll: h3o::LatLng| nadc_core::GeoPoint::new(ll.lat(), ll.lng()).ok();
    let centre = point(h3o::LatLng::from(c))?;
    let radius = c
        .boundary()
        .iter()
        .filter_map(|v| point(*v))
        .map(|v| centre.distance_m(v))
        .fold(0.0, f64::max);
    Some((centre, radius))
}

/// A node's convoy answer: companions and summary.
pub type ConvoyAnswer = (Vec<pb::Companion>, pb::ConvoySummary);

/// Reads a streamed convoy answer to the end.
pub async fn collect_convoy(
    mut s: std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::ConvoyChunk, Status>> + Send>>,
) -> Result<ConvoyAnswer, Status> {
    use futures::StreamExt;
    let (mut companions, mut summary) = (Vec::new(), None);
    while let Some(c) = s.next().await {
        match c?.chunk {
            Some(pb::convoy_chunk::Chunk::Companion(x)) => companions.push(x),
            Some(pb::convoy_chunk::Chunk::Summary(x)) => summary = Some(x),
            None => {}
        }
    }
    Ok((
        companions,
        summary.ok_or_else(|| Status::data_loss("the answer ended without a summary"))?,
    ))
}

/// Merges convoy answers from nodes that each hold different cameras:
/// companions by VRM (co-occurrences and cameras summed, targets united,
/// pairs in target time order), then the filters, ranking (co-occurrences,
/// cameras, VRM) and limit.
pub fn merge_convoy(
    answers: Vec<ConvoyAnswer>,
    min_count: u32,
    min_cameras: u32,
    limit: usize,
) -> (Vec<pb::Companion>, pb::ConvoySummary) {
    let mut by_vrm: BTreeMap<String, pb::Companion> = BTreeMap::new();
    let mut summary = pb::ConvoySummary::default();
    let mut targets = std::collections::BTreeSet::new();
    for (companions, s) in answers {
        summary.target_reads += s.target_reads;
        summary.entries_examined += s.entries_examined;
        summary.clipped_from = summary.clipped_from.or(s.clipped_from);
        summary.stale.extend(s.stale);
        targets.extend(s.targets);
        for c in companions {
            match by_vrm.get_mut(&c.vrm) {
                None => {
                    by_vrm.insert(c.vrm.clone(), c);
                }
                Some(e) => {
                    e.co_occurrences += c.co_occurrences;
                    e.cameras += c.cameras;
                    for t in c.targets {
                        if !e.targets.contains(&t) {
                            e.targets.push(t);
                        }
                    }
                    e.pairs.extend(c.pairs);
                }
            }
        }
    }
    let time = |p: &pb::ConvoyPair| {
        p.target
            .as_ref()
            .and_then(|r| r.provenance.as_ref())
            .and_then(|p| p.observed_at.as_ref())
            .and_then(nadc_proto::from_pb_time)
            .map_or(0, |t| t.millis())
    };
    let mut ranked: Vec<pb::Companion> = by_vrm
        .into_values()
        .filter(|c| c.co_occurrences >= min_count && c.cameras >= min_cameras)
        .map(|mut c| {
            c.targets.sort();
            c.pairs.sort_by_key(time);
            c
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.co_occurrences
            .cmp(&a.co_occurrences)
            .then(b.cameras.cmp(&a.cameras))
            .then(a.vrm.cmp(&b.vrm))
    });
    summary.total_companions = ranked.len() as u64;
    summary.truncated = ranked.len() > limit;
    ranked.truncate(limit);
    for (i, c) in ranked.iter_mut().enumerate() {
        c.rank = i as u32 + 1;
    }
    let mut forces: BTreeMap<String, u64> = BTreeMap::new();
    for c in &ranked {
        for p in &c.pairs {
            for r in [&p.target, &p.companion].into_iter().flatten() {
                if let Some(pr) = &r.provenance {
                    *forces.entry(pr.owning_force.clone()).or_default() += 1;
                }
            }
        }
    }
    summary.forces = forces
        .into_iter()
        .map(|(force, rows)| pb::ForceCount { force, rows })
        .collect();
    summary.companions = ranked.len() as u64;
    summary.targets = targets.into_iter().collect();
    (ranked, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nadc_core::GeoPoint;
    use rand::{Rng, SeedableRng};

    fn holding(cells: Option<Vec<u64>>) -> Holdings {
        Holdings {
            cells: cells.as_deref().map(cells_reach),
            ..Holdings::default()
        }
    }

    fn near(point: GeoPoint, reach_m: f64) -> Reach {
        Reach {
            near: Some((vec![point], reach_m)),
            ..Reach::default()
        }
    }

    /// A peer holding one read, anywhere in its coarse cell (near its
    /// vertices most of all), is asked by every search point within reach
    /// of the read, whatever the reach; and skipped by a search far away.
    #[test]
    fn a_peer_is_asked_by_every_search_that_reaches_one_of_its_reads() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let mut skipped = 0;
        for _ in 0..5_000 {
            let lat = rng.random_range(-70.0..70.0);
            let lon = rng.random_range(-180.0..180.0);
            let ll = h3o::LatLng::new(lat, lon).unwrap();
            let cell = ll.to_cell(nadc_core::geo::COARSE_RESOLUTION);
            // The read: near one of the cell's vertices, inside the cell.
            let v = cell.boundary().iter().copied().next().unwrap();
            let t: f64 = rng.random_range(0.9..1.0);
            let centre = h3o::LatLng::from(cell);
            let read = h3o::LatLng::new(
                centre.lat() + t * (v.lat() - centre.lat()),
                centre.lng() + t * (v.lng() - centre.lng()),
            )
            .unwrap();
            if read.to_cell(nadc_core::geo::COARSE_RESOLUTION) != cell {
                continue;
            }
            let read = GeoPoint::new(read.lat(), read.lng()).unwrap();
            let h = holding(Some(vec![u64::from(cell)]));
            // A search point up to 30 km away, reaching the read exactly.
            let dlat = rng.random_range(-0.27..0.27);
            let dlon = rng.random_range(-0.27..0.27);
            let Ok(q) = GeoPoint::new(read.lat() + dlat, read.lon() + dlon) else {
                continue;
            };
            let reach_m = q.distance_m(read);
            assert!(may_hold(&h, &near(q, reach_m)), "{read:?} from {q:?}");
            if !may_hold(&h, &near(q, 100.0)) {
                skipped += 1;
            }
        }
        assert!(skipped > 1_000, "{skipped}: far searches should skip");
    }

    /// A peer that does not say its cells are its reads' (a release from
    /// before) is never skipped by place.
    #[test]
    fn a_peer_not_telling_its_reads_cells_is_asked_everywhere() {
        let far = GeoPoint::new(-40.0, 170.0).unwrap();
        assert!(may_hold(&holding(None), &near(far, 10.0)));
        let bristol = GeoPoint::new(51.45, -2.58)
            .unwrap()
            .cell_at(h3o::Resolution::Five);
        assert!(!may_hold(&holding(Some(vec![bristol])), &near(far, 10.0)));
    }
}
