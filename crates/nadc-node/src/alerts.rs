//! Real-time alerts: raising them as reads are ingested, and streaming them
//! to subscribers.
//!
//! Invariants:
//! - A hotlist hit and a clone flag against a stored read are logged in the
//!   same durable write as the read that raised them: a read acknowledged
//!   to its BOF never loses its alert, and a duplicate read raises nothing.
//! - Alerts that need the read to be stored first (a clone between two
//!   reads of one batch, a convoy analysed after a hit) are logged right
//!   after the append; they are derived from stored reads and can be
//!   recomputed with the retrospective searches.
//! - Subscribers read the stored log from a position, then follow new
//!   positions: a slow or reconnecting subscriber misses nothing.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use nadc_core::alert::{Alert, AlertDetail, AlertKind, AlertState, CompanionBrief};
use nadc_core::hotlist::{HotlistId, describe_substitutions};
use nadc_core::time::Clock;
use nadc_core::{ForceId, Principal, ReadRef, StoredRead, Timestamp};
use nadc_proto::hotlists::{
    action_from_pb, action_to_pb, entry_to_pb, kind_from_pb, kind_to_pb, list_ref_to_pb,
    state_to_pb, verification_from_pb,
};
use nadc_proto::{self as proto, pb};
use nadc_query::clones::{CloneRule, flag_neighbours};
use nadc_query::convoy::{ConvoyQuery, convoy};
use nadc_store::{Appended, NewRead, Store, StoreError};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::auth::caller;
use crate::config::AlertsConfig;
use crate::hotlists::{HotlistRegistry, list_id};
use crate::recent::RecentReads;

/// Alerts sent to a subscriber per store visit.
const REPLAY_BATCH: usize = 256;

/// Tells subscribers the log's newest position.
#[derive(Debug)]
pub struct AlertHub {
    latest: watch::Sender<u64>,
}

impl AlertHub {
    /// A hub starting at the log's current last position.
    pub fn new(last: u64) -> Self {
        Self {
            latest: watch::Sender::new(last),
        }
    }

    /// Announces that the log now reaches `position`.
    pub fn notify(&self, position: u64) {
        self.latest.send_if_modified(|p| {
            let newer = position > *p;
            if newer {
                *p = position;
            }
            newer
        });
    }

    /// A receiver of the newest position.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

/// A read of a batch that [`Alerting::after_append`] looks at again.
#[derive(Clone, Debug)]
pub struct Brief {
    index: usize,
    vrm: nadc_core::Vrm,
    observed_at: Timestamp,
    position: nadc_core::GeoPoint,
    raised: bool,
    convoy: Vec<ConvoyTrigger>,
}

/// A hit on an entry flagged for convoy analysis.
#[derive(Clone, Debug)]
struct ConvoyTrigger {
    list: HotlistId,
    purpose: String,
    action: nadc_core::hotlist::Action,
}

/// The alerting stage of ingest.
pub struct Alerting {
    /// The store (read-only here; the append is the ingest pipeline's).
    pub store: Arc<dyn Store>,
    /// Lists to match.
    pub hotlists: Arc<HotlistRegistry>,
    /// Where new positions are announced.
    pub hub: Arc<AlertHub>,
    /// What to check.
    pub config: AlertsConfig,
    /// The node's clock (entry expiry).
    pub clock: Arc<dyn Clock>,
    /// Companions already named per (list, target), so repeated hits raise
    /// a convoy alert only for a new companion.
    pub named: Mutex<HashMap<(HotlistId, nadc_core::Vrm), BTreeSet<nadc_core::Vrm>>>,
    /// Recent reads in memory, answering most clone checks without the
    /// store (none: every check asks the store).
    pub recent: Option<Arc<RecentReads>>,
}

/// What a batch's clone check needs of each read, kept to add the stored
/// ones to [`Alerting::recent`] after the append: (VRM, capture time,
/// position).
pub type Sightings = Vec<(nadc_core::Vrm, Timestamp, nadc_core::GeoPoint)>;

impl Alerting {
    fn rule(&self) -> CloneRule {
        CloneRule {
            max_speed_kmh: self.config.clone_max_speed_kmh,
            min_distance_m: self.config.clone_min_distance_m,
        }
    }

    /// Attaches to each read the alerts it raises against the lists and the
    /// reads already stored. Blocking (store lookups): call off the runtime.
    /// Gives back what [`Alerting::remember`] needs once the reads are
    /// stored.
    pub fn annotate(&self, reads: &mut [NewRead]) -> Result<Sightings, StoreError> {
        let matcher = self.hotlists.matcher();
        let now = self.clock.now();
        for r in reads.iter_mut() {
            for hit in matcher.matches(&r.read.vrm, now) {
                r.alerts.push(AlertDetail::Hit {
                    list: hit.list.id.clone(),
                    purpose: hit.list.purpose.clone(),
                    entry: hit.entry.clone(),
                    matched: hit.matched,
                });
            }
        }
        if !self.config.clone_check || reads.is_empty() {
            return Ok(Vec::new());
        }
        let sightings: Sightings = reads
            .iter()
            .map(|r| (r.read.vrm.clone(), r.read.observed_at, r.position))
            .collect();
        let look = i64::from(self.config.clone_look_back_s) * 1000;
        let rule = self.rule();
        // The rule comes from the node's config: invalid, it is the node's
        // fault, not the batch's.
        rule.validate()
            .map_err(|e| StoreError::Engine(e.to_string()))?;
        let mut found = match &self.recent {
            Some(recent) => recent.neighbours(sightings.iter().map(|(v, t, _)| (v, *t)), look),
            None => vec![None; sightings.len()],
        };
        // What memory could not answer, from the store in one pass.
        let missing: Vec<usize> = (0..found.len()).filter(|i| found[*i].is_none()).collect();
        if !missing.is_empty() {
            let asked: Vec<_> = missing
                .iter()
                .map(|i| (sightings[*i].0.clone(), sightings[*i].1))
                .collect();
            let answers = self.store.vrm_neighbours(&asked, look)?;
            for (i, pair) in missing.into_iter().zip(answers) {
                found[i] = Some(pair);
            }
        }
        let neighbours = found.into_iter().map(Option::unwrap_or_default).collect();
        let flagged = flag_neighbours(&sightings, neighbours, &rule);
        for (r, neighbours) in reads.iter_mut().zip(flagged) {
            r.alerts
                .extend(neighbours.into_iter().map(|n| AlertDetail::Clone {
                    other: n.other,
                    distance_m: n.distance_m,
                    seconds: n.seconds,
                    speed_kmh: n.speed_kmh,
                }));
        }
        Ok(sightings)
    }

    /// Adds the reads an append stored to [`Alerting::recent`]: call with
    /// [`Alerting::annotate`]'s sightings and the append's outcomes, before
    /// anything else can fail, so that memory holds every stored read.
    pub fn remember(&self, sightings: &Sightings, outcomes: &[Appended]) {
        if let Some(recent) = &self.recent {
            recent.add(sightings, outcomes);
        }
    }

    /// What [`Alerting::after_append`] needs of a batch, taken before the
    /// reads move into the store: the reads that raised alerts, and the
    /// reads whose VRM appears more than once in the batch.
    pub fn brief(&self, reads: &[NewRead]) -> Vec<Brief> {
        let mut count: HashMap<&str, u32> = HashMap::new();
        if self.config.clone_check {
            for r in reads {
                *count.entry(r.read.vrm.as_str()).or_default() += 1;
            }
        }
        reads
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                !r.alerts.is_empty() || count.get(r.read.vrm.as_str()).is_some_and(|n| *n > 1)
            })
            .map(|(index, r)| Brief {
                index,
                vrm: r.read.vrm.clone(),
                observed_at: r.read.observed_at,
                position: r.position,
                raised: !r.alerts.is_empty(),
                convoy: r
                    .alerts
                    .iter()
                    .filter_map(|a| match a {
                        AlertDetail::Hit {
                            list,
                            purpose,
                            entry,
                            ..
                        } if entry.convoy => Some(ConvoyTrigger {
                            list: list.clone(),
                            purpose: purpose.clone(),
                            action: entry.action,
                        }),
                        _ => None,
                    })
                    .collect(),
            })
            .collect()
    }

    /// After the append: logs clone flags between reads of the same batch
    /// (their sequence numbers are known only now), announces new alerts,
    /// and starts convoy analysis for hits on entries flagged for it.
    pub fn after_append(
        self: &Arc<Self>,
        force: &ForceId,
        briefs: Vec<Brief>,
        outcomes: &[Appended],
    ) {
        let stored: Vec<(Brief, u64)> = briefs
            .into_iter()
            .filter_map(|b| match outcomes.get(b.index) {
                Some(Appended::Stored { seq }) => Some((b, *seq)),
                _ => None,
            })
            .collect();
        let mut extra = Vec::new();
        if self.config.clone_check {
            let mut by_vrm: HashMap<&str, Vec<(&Brief, u64)>> = HashMap::new();
            for (b, seq) in &stored {
                by_vrm.entry(b.vrm.as_str()).or_default().push((b, *seq));
            }
            let rule = self.rule();
            for mut same in by_vrm.into_values().filter(|v| v.len() > 1) {
                same.sort_by_key(|(b, seq)| (b.observed_at, *seq));
                for pair in same.windows(2) {
                    let ((a, sa), (b, sb)) = (pair[0], pair[1]);
                    let distance_m = a.position.distance_m(b.position);
                    let seconds = (b.observed_at.millis() - a.observed_at.millis()) as f64 / 1000.0;
                    if let Some(speed_kmh) = rule.flags(distance_m, seconds) {
                        extra.push(Alert {
                            raised_at: self.clock.now(),
                            read: ReadRef {
                                day: b.observed_at.day(),
                                seq: sb,
                            },
                            read_force: force.clone(),
                            detail: AlertDetail::Clone {
                                other: ReadRef {
                                    day: a.observed_at.day(),
                                    seq: sa,
                                },
                                distance_m,
                                seconds,
                                speed_kmh,
                            },
                        });
                    }
                }
            }
        }
        let raised = !extra.is_empty() || stored.iter().any(|(b, _)| b.raised);
        if !extra.is_empty()
            && let Err(e) = self.store.log_alerts(extra)
        {
            warn!(error = %e, "could not log in-batch clone alerts");
        }
        if raised {
            self.hub.notify(self.store.last_alert());
        }
        for (b, seq) in stored {
            let read = ReadRef {
                day: b.observed_at.day(),
                seq,
            };
            for trigger in b.convoy {
                let me = self.clone();
                let force = force.clone();
                let (target, at) = (b.vrm.clone(), b.observed_at);
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = me.convoy_alert(trigger, target, at, read, force) {
                        warn!(error = %e, "real-time convoy analysis failed");
                    }
                });
            }
        }
    }

    /// Analyses the target's recent reads for companions and logs a convoy
    /// alert naming them, when one of them was not named by the last convoy
    /// alert for this target and list (so a target read fifty times a day
    /// raises an alert when a new companion appears, not fifty).
    fn convoy_alert(
        &self,
        trigger: ConvoyTrigger,
        target: nadc_core::Vrm,
        at: Timestamp,
        read: ReadRef,
        read_force: ForceId,
    ) -> Result<(), nadc_query::QueryError> {
        let c = &self.config;
        let q = ConvoyQuery {
            targets: vec![target.clone()],
            from: at.plus_millis(-i64::from(c.convoy_look_back_s) * 1000),
            to: at,
            window_s: c.convoy_window_s,
            min_count: c.convoy_min_count,
            min_cameras: 1,
            limit: c.convoy_max_companions,
            max_target_reads: 10_000,
            max_candidates: 1_000_000,
        };
        let result = convoy(self.store.as_ref(), &q)?;
        let ConvoyTrigger {
            list,
            purpose,
            action,
        } = trigger;
        debug!(list = %list, companions = result.companions.len(), "real-time convoy analysed");
        {
            let mut named = match self.named.lock() {
                Ok(n) => n,
                Err(poisoned) => poisoned.into_inner(),
            };
            let seen = named.entry((list.clone(), target.clone())).or_default();
            if result.companions.iter().all(|c| seen.contains(&c.vrm)) {
                return Ok(());
            }
            seen.extend(result.companions.iter().map(|c| c.vrm.clone()));
        }
        let companions = result
            .companions
            .iter()
            .map(|c| CompanionBrief {
                vrm: c.vrm.clone(),
                co_occurrences: c.co_occurrences,
                cameras: c.cameras,
            })
            .collect();
        let alert = Alert {
            raised_at: self.clock.now(),
            read,
            read_force,
            detail: AlertDetail::Convoy {
                list,
                purpose,
                target,
                action,
                look_back_s: c.convoy_look_back_s,
                companions,
            },
        };
        self.store.log_alerts(vec![alert])?;
        self.hub.notify(self.store.last_alert());
        Ok(())
    }
}

/// What a subscriber wants.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    lists: Vec<(Option<ForceId>, String)>,
    forces: Vec<ForceId>,
    actions: Vec<nadc_core::hotlist::Action>,
    kinds: Vec<AlertKind>,
}

impl AlertFilter {
    fn from_pb(q: &pb::WatchRequest) -> Result<Self, Status> {
        let lists = q
            .lists
            .iter()
            .map(|l| {
                let owner = if l.owner.trim().is_empty() {
                    None
                } else {
                    Some(ForceId::new(&l.owner).map_err(|e| {
                        Status::invalid_argument(format!("list owner {:?}: {e}", l.owner))
                    })?)
                };
                Ok((owner, l.name.trim().to_string()))
            })
            .collect::<Result<_, Status>>()?;
        let forces = q
            .forces
            .iter()
            .map(|f| ForceId::new(f).map_err(|e| Status::invalid_argument(format!("force: {e}"))))
            .collect::<Result<_, _>>()?;
        let actions = q
            .actions
            .iter()
            .map(|a| {
                action_from_pb(*a)
                    .ok_or_else(|| Status::invalid_argument(format!("action {a} is unknown")))
            })
            .collect::<Result<_, _>>()?;
        let kinds = q
            .kinds
            .iter()
            .map(|k| {
                kind_from_pb(*k)
                    .ok_or_else(|| Status::invalid_argument(format!("kind {k} is unknown")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            lists,
            forces,
            actions,
            kinds,
        })
    }

    /// Whether an alert passes.
    pub fn passes(&self, a: &Alert) -> bool {
        let d = &a.detail;
        if !self.kinds.is_empty() && !self.kinds.contains(&d.kind()) {
            return false;
        }
        if !self.actions.is_empty() && !d.action().is_some_and(|x| self.actions.contains(&x)) {
            return false;
        }
        if !self.lists.is_empty()
            && !d.list().is_some_and(|id| {
                self.lists
                    .iter()
                    .any(|(o, n)| *n == id.name && o.as_ref().is_none_or(|o| *o == id.owner))
            })
        {
            return false;
        }
        if !self.forces.is_empty()
            && !self
                .forces
                .iter()
                .any(|f| *f == a.read_force || d.list().is_some_and(|id| id.owner == *f))
        {
            return false;
        }
        true
    }
}

/// Builds the wire events for logged alerts: fetches their reads (and a
/// clone's other read) and verification states. Alerts retention deleted
/// since they were read are left out.
pub fn events(
    store: &dyn Store,
    node: &str,
    mut alerts: Vec<(u64, Alert)>,
) -> Result<Vec<pb::AlertEvent>, StoreError> {
    let reads = match named_reads(store, &alerts) {
        Ok(reads) => reads,
        // A read is missing. Retention deletes a read with every alert
        // naming it, in one write, so if that happened since the alerts
        // were read, those alerts are gone now: the rest are fetched again,
        // and a read still missing is corruption.
        Err(StoreError::Corrupt { .. }) => {
            alerts = still_logged(store, alerts)?;
            named_reads(store, &alerts)?
        }
        Err(e) => return Err(e),
    };
    let positions: Vec<u64> = alerts.iter().map(|(p, _)| *p).collect();
    let states = store.alert_states(&positions)?;
    Ok(alerts
        .into_iter()
        .zip(states)
        .map(|((position, a), state)| event(node, position, &a, &reads, state.as_ref()))
        .collect())
}

/// Every read the alerts name.
fn named_reads(
    store: &dyn Store,
    alerts: &[(u64, Alert)],
) -> Result<HashMap<ReadRef, StoredRead>, StoreError> {
    let mut refs: Vec<ReadRef> = alerts.iter().flat_map(|(_, a)| a.reads()).collect();
    refs.sort_unstable();
    refs.dedup();
    Ok(refs.iter().copied().zip(store.get_reads(&refs)?).collect())
}

/// The alerts still in the log.
fn still_logged(
    store: &dyn Store,
    alerts: Vec<(u64, Alert)>,
) -> Result<Vec<(u64, Alert)>, StoreError> {
    let mut kept = Vec::with_capacity(alerts.len());
    for (position, alert) in alerts {
        if logged_alert(store, position)?.is_some() {
            kept.push((position, alert));
        }
    }
    Ok(kept)
}

/// The alert logged at `position`, if it is (still) there.
fn logged_alert(store: &dyn Store, position: u64) -> Result<Option<Alert>, StoreError> {
    let mut found = None;
    store.alerts(position.saturating_sub(1), &mut |p, a| {
        if p == position {
            found = Some(a);
        }
        ControlFlow::Break(())
    })?;
    Ok(found)
}

fn event(
    node: &str,
    position: u64,
    a: &Alert,
    reads: &HashMap<ReadRef, StoredRead>,
    state: Option<&AlertState>,
) -> pb::AlertEvent {
    let row = |r: &ReadRef| reads.get(r).map(|s| proto::row_from_stored(s, node));
    let mut e = pb::AlertEvent {
        position,
        kind: kind_to_pb(a.detail.kind()) as i32,
        raised_at: Some(proto::to_pb_time(a.raised_at)),
        read: row(&a.read),
        verification: Some(match state {
            Some(s) => state_to_pb(s),
            None => pb::AlertVerification {
                state: pb::Verification::Unverified as i32,
                ..Default::default()
            },
        }),
        node: node.to_string(),
        ..Default::default()
    };
    match &a.detail {
        AlertDetail::Hit {
            list,
            purpose,
            entry,
            matched,
        } => {
            e.list = Some(list_ref_to_pb(list));
            e.purpose = purpose.clone();
            e.entry = Some(entry_to_pb(entry));
            e.r#match = Some(proto::match_to_pb(matched));
            if let Some(r) = reads.get(&a.read) {
                e.substitutions = describe_substitutions(&entry.vrm, &r.read.vrm);
            }
        }
        AlertDetail::Convoy {
            list,
            purpose,
            target,
            action,
            look_back_s,
            companions,
        } => {
            e.list = Some(list_ref_to_pb(list));
            e.purpose = purpose.clone();
            e.entry = Some(pb::HotlistEntry {
                vrm: target.as_str().to_string(),
                action: action_to_pb(*action) as i32,
                ..Default::default()
            });
            e.look_back_s = *look_back_s;
            e.companions = companions
                .iter()
                .map(|c| pb::CompanionBrief {
                    vrm: c.vrm.as_str().to_string(),
                    co_occurrences: c.co_occurrences,
                    cameras: c.cameras,
                })
                .collect();
        }
        AlertDetail::Clone {
            other,
            distance_m,
            seconds,
            speed_kmh,
        } => {
            e.other_read = row(other);
            e.distance_m = *distance_m;
            e.seconds = *seconds;
            e.speed_kmh = *speed_kmh;
        }
    }
    e
}

/// The Alerts service.
#[derive(Clone)]
pub struct AlertsService {
    /// The store holding the log.
    pub store: Arc<dyn Store>,
    /// New positions.
    pub hub: Arc<AlertHub>,
    /// The node's name, for provenance.
    pub node: String,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// Where verifications are audited.
    pub governance: Arc<crate::governance::Governance>,
    /// Peers, for a national history of alerts.
    pub federation: Option<Arc<crate::federation::Federation>>,
    /// Set when the node stops: following watches end with UNAVAILABLE
    /// (so the subscriber reconnects and resumes) instead of holding the
    /// node open.
    pub stop: watch::Receiver<bool>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AlertEvent, Status>> + Send>>;

impl AlertsService {
    /// The alerts logged on this node and its peers, merged by the time
    /// they were raised (then node, then position); a peer that fails ends
    /// the stream with UNAVAILABLE naming it, after the rest.
    async fn national_history(
        &self,
        user: Principal,
        q: pb::WatchRequest,
    ) -> Result<Response<EventStream>, Status> {
        use futures::StreamExt;
        let federation = self
            .federation
            .clone()
            .ok_or_else(|| Status::internal("no peers"))?;
        let mut local_q = q.clone();
        local_q.scope = pb::Scope::Local as i32;
        let filter = AlertFilter::from_pb(&local_q)?;
        let (store, node) = (self.store.clone(), self.node.clone());
        let after = q.after;
        let local = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut pos = after;
            loop {
                let (alerts, last) = next_batch(store.as_ref(), pos, &filter)?;
                out.extend(events(store.as_ref(), &node, alerts)?);
                if last == pos {
                    break;
                }
                pos = last;
            }
            Ok::<_, StoreError>(out)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::unavailable(format!("alert log: {e}")))?;
        let mut remote = q.clone();
        remote.scope = pb::Scope::Local as i32;
        remote.after = 0;
        remote.from_now = false;
        remote.on_behalf_of = crate::federation::on_behalf_of(&user, &self.node);
        let answers = federation
            .call_peers(&federation.peers, |peer| {
                let req = remote.clone();
                async move {
                    let mut c = pb::alerts_client::AlertsClient::new(peer.channel())
                        .max_decoding_message_size(64 << 20);
                    let mut s = c.watch(req).await?.into_inner();
                    let mut out = Vec::new();
                    while let Some(e) = s.next().await {
                        out.push(e?);
                    }
                    Ok::<_, Status>(out)
                }
            })
            .await;
        let mut all = local;
        let mut failed = Vec::new();
        for (name, r) in answers {
            match r {
                Ok(v) => all.extend(v),
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        let ms = |e: &pb::AlertEvent| {
            e.raised_at
                .as_ref()
                .and_then(proto::from_pb_time)
                .map_or(0, |t| t.millis())
        };
        all.sort_by_cached_key(|e| (ms(e), e.node.clone(), e.position));
        let (tx, rx) = mpsc::channel::<Result<pb::AlertEvent, Status>>(64);
        tokio::spawn(async move {
            for e in all {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            if !failed.is_empty() {
                let _ = tx
                    .send(Err(Status::unavailable(format!(
                        "partial: alerts of {} are missing",
                        failed.join("; ")
                    ))))
                    .await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A notice on a national watch that a peer was lost or is back.
fn peer_notice(node: &str, error: Option<(&str, std::time::Duration)>) -> pb::AlertEvent {
    pb::AlertEvent {
        node: node.to_string(),
        peer: Some(pb::PeerNotice {
            node: node.to_string(),
            reachable: error.is_none(),
            error: error.map(|(e, _)| e.to_string()).unwrap_or_default(),
            retry_in_ms: error.map_or(0, |(_, w)| w.as_millis() as u64),
        }),
        ..Default::default()
    }
}

/// Follows one peer's new alerts into `tx` until the subscriber goes. A
/// lost peer is reconnected with backoff and resumed after the last
/// position it sent (or, if it sent none yet, from its log filtered to
/// alerts raised since the watch began), so an outage delays its alerts
/// but loses none; the watcher is told when the peer is lost (once per
/// outage) and when it is back.
async fn follow_peer(
    name: String,
    channel: tonic::transport::Channel,
    request: pb::WatchRequest,
    since: Timestamp,
    tx: mpsc::Sender<Result<pb::AlertEvent, Status>>,
) {
    let mut last: Option<u64> = None;
    let mut reconnecting = false;
    let mut attempt = 0u32;
    loop {
        let mut req = request.clone();
        match (last, reconnecting) {
            (Some(p), _) => (req.after, req.from_now) = (p, false),
            (None, false) => req.from_now = true,
            (None, true) => (req.after, req.from_now) = (0, false),
        }
        let mut client = pb::alerts_client::AlertsClient::new(channel.clone())
            .max_decoding_message_size(64 << 20);
        let lost = attempt > 0;
        let outcome = async {
            let mut s = client.watch(req).await?.into_inner();
            if lost {
                attempt = 0;
                if tx.send(Ok(peer_notice(&name, None))).await.is_err() {
                    return Ok(());
                }
            }
            while let Some(e) = s.message().await? {
                last = Some(e.position);
                let raised = e.raised_at.as_ref().and_then(proto::from_pb_time);
                if raised.is_some_and(|t| t < since) {
                    continue;
                }
                if tx.send(Ok(e)).await.is_err() {
                    return Ok(());
                }
            }
            Err(Status::unavailable("the peer ended the watch"))
        };
        let error = tokio::select! {
            r = outcome => match r {
                Ok(()) => return,
                Err(e) => e,
            },
            () = tx.closed() => return,
        };
        reconnecting = true;
        let wait = std::time::Duration::from_millis(200 * (1u64 << attempt.min(7)));
        if attempt == 0 {
            let notice = peer_notice(&name, Some((error.message(), wait)));
            if tx.send(Ok(notice)).await.is_err() {
                return;
            }
        }
        attempt += 1;
        warn!(peer = %name, error = %error.message(), wait_ms = wait.as_millis() as u64,
            "national alert watch: peer lost, reconnecting");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = tx.closed() => return,
        }
    }
}

fn require_user<T>(req: &Request<T>) -> Result<(ForceId, String), Status> {
    match caller(req)?.principal {
        Principal::User { force, name, .. } => Ok((force, name)),
        other => Err(Status::permission_denied(format!(
            "alerts need a user certificate; caller is {other}"
        ))),
    }
}

/// Reads up to [`REPLAY_BATCH`] alerts after `after`: the passing ones, and
/// the last position read (to continue from).
fn next_batch(
    store: &dyn Store,
    after: u64,
    filter: &AlertFilter,
) -> Result<(Vec<(u64, Alert)>, u64), StoreError> {
    let mut out = Vec::new();
    let mut last = after;
    let mut seen = 0;
    store.alerts(after, &mut |p, a| {
        last = p;
        seen += 1;
        if filter.passes(&a) {
            out.push((p, a));
        }
        if seen >= REPLAY_BATCH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok((out, last))
}

#[tonic::async_trait]
impl pb::alerts_server::Alerts for AlertsService {
    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let principal = caller(&req)?.principal;
        let relayed = crate::federation::relayed_user(
            self.federation.as_deref(),
            &principal,
            req.get_ref().on_behalf_of.as_ref(),
        )?;
        let principal = relayed.clone().unwrap_or(principal);
        let (force, user) = match &principal {
            Principal::User { force, name, .. } => (force.clone(), name.clone()),
            other => {
                return Err(Status::permission_denied(format!(
                    "alerts need a user certificate; caller is {other}"
                )));
            }
        };
        let q = req.into_inner();
        let national = q.history_only
            && q.scope != pb::Scope::Local as i32
            && relayed.is_none()
            && self
                .federation
                .as_ref()
                .is_some_and(|f| !f.peers.is_empty());
        if national {
            return self.national_history(principal, q).await;
        }
        // Following nationally: this node's log as below, and each peer's
        // new alerts as they are raised, interleaved as they arrive.
        let follow_peers =
            if !q.history_only && q.scope != pb::Scope::Local as i32 && relayed.is_none() {
                self.federation.clone().filter(|f| !f.peers.is_empty())
            } else {
                None
            };
        let filter = AlertFilter::from_pb(&q)?;
        info!(user = %user, force = %force, after = q.after, follow = !q.history_only, "alert watch opened");
        let (tx, rx) = mpsc::channel::<Result<pb::AlertEvent, Status>>(64);
        let peer_tx = tx.clone();
        let (store, node) = (self.store.clone(), self.node.clone());
        let mut latest = self.hub.subscribe();
        let mut stop = self.stop.clone();
        let history_only = q.history_only;
        let start = if q.from_now {
            self.store.last_alert()
        } else {
            q.after
        };
        tokio::spawn(async move {
            let mut pos = start;
            loop {
                // Drain everything logged after `pos`.
                loop {
                    let (s, n, f) = (store.clone(), node.clone(), filter.clone());
                    let got = tokio::task::spawn_blocking(move || {
                        let (alerts, last) = next_batch(s.as_ref(), pos, &f)?;
                        Ok::<_, StoreError>((events(s.as_ref(), &n, alerts)?, last))
                    })
                    .await;
                    let (batch, last) = match got {
                        Ok(Ok(b)) => b,
                        Ok(Err(e)) => {
                            let _ = tx
                                .send(Err(Status::unavailable(format!("alert log: {e}"))))
                                .await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                            return;
                        }
                    };
                    for e in batch {
                        if tx.send(Ok(e)).await.is_err() {
                            return;
                        }
                    }
                    if last == pos {
                        break;
                    }
                    pos = last;
                }
                if history_only {
                    return;
                }
                // Wait for a newer position, for the subscriber to go, or
                // for the node to stop.
                let stopping = tokio::select! {
                    changed = latest.wait_for(|p| *p > pos) => {
                        if changed.is_err() {
                            return;
                        }
                        false
                    }
                    () = tx.closed() => return,
                    stopped = stop.wait_for(|s| *s) => stopped.is_ok(),
                };
                if stopping {
                    let _ = tx
                        .send(Err(Status::unavailable(format!(
                            "the node is stopping; resume after position {pos}"
                        ))))
                        .await;
                    return;
                }
            }
        });
        if let Some(federation) = follow_peers {
            let mut remote = q.clone();
            remote.scope = pb::Scope::Local as i32;
            remote.on_behalf_of = crate::federation::on_behalf_of(&principal, &self.node);
            let since = self.clock.now();
            for peer in &federation.peers {
                tokio::spawn(follow_peer(
                    peer.name.clone(),
                    peer.channel(),
                    remote.clone(),
                    since,
                    peer_tx.clone(),
                ));
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::AlertEvent>, Status> {
        let actor = crate::governance::Actor::of(&caller(&req)?.principal);
        let (force, user) = require_user(&req)?;
        let q = req.into_inner();
        let state = verification_from_pb(q.state).ok_or_else(|| {
            Status::invalid_argument("state is required: confirmed, rejected or unverified")
        })?;
        if q.note.len() > nadc_core::hotlist::MAX_TEXT_LEN || q.note.chars().any(char::is_control) {
            return Err(Status::invalid_argument(
                "note: at most 512 bytes, no control characters",
            ));
        }
        let record = AlertState {
            state,
            by: user.clone(),
            by_force: force,
            at: self.clock.now(),
            note: q.note.trim().to_string(),
        };
        let (store, node, position) = (self.store.clone(), self.node.clone(), q.position);
        let event = tokio::task::spawn_blocking(move || {
            let Some(alert) = logged_alert(store.as_ref(), position)? else {
                return Ok(None);
            };
            if !store.set_alert_state(position, &record)? {
                return Ok(None);
            }
            Ok::<_, StoreError>(events(store.as_ref(), &node, vec![(position, alert)])?.pop())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::unavailable(format!("alert log: {e}")))?
        .ok_or_else(|| Status::not_found(format!("no alert at position {position}")))?;
        let what = crate::governance::Audited {
            query: serde_json::json!({"position": position, "state": state.as_str(),
                "note": q.note, "read_vrm": event.read.as_ref().map(|r| r.vrm.clone())}),
            ..Default::default()
        };
        self.governance
            .record(self.governance.entry(
                &actor,
                "alert.verify",
                &what,
                nadc_core::audit::Outcome::Ok,
            ))
            .await?;
        info!(user = %user, position, state = state.as_str(), "alert verified");
        Ok(Response::new(event))
    }
}

/// The list filter of a convoy search naming a hotlist: its active entries.
pub fn hotlist_targets(
    registry: &HotlistRegistry,
    r: &pb::HotlistRef,
    caller_force: &ForceId,
    now: Timestamp,
) -> Result<Vec<nadc_core::Vrm>, Status> {
    let id = list_id(Some(r), caller_force)?;
    let (_, entries) = registry
        .get(&id)
        .ok_or_else(|| Status::not_found(format!("no list {id}")))?;
    Ok(entries
        .into_iter()
        .filter(|e| e.active_at(now))
        .map(|e| e.vrm)
        .collect())
}
