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
//! - A subscriber sees only what its grant allows ([`service`]): an
//!   alerting role, its own force's alerts, history only under a purpose
//!   and case; every batch is audited before it is sent.

use crate::changes::Changes;
use crate::error::ServiceError;
use nadc_proto::log::{Change, LoggedAlert};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tonic::Status;

use nadc_core::alert::{AlertDetail, CompanionBrief};
use nadc_core::hotlist::HotlistId;
use nadc_core::time::Clock;
use nadc_core::{ForceId, Timestamp};
use nadc_proto::pb;
use nadc_query::clones::{CloneRule, flag_neighbours};
use nadc_query::convoy::{ConvoyQuery, convoy};
use nadc_store::{Appended, NewRead, Store, StoreError};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::AlertsConfig;
use crate::hotlists::{HotlistRegistry, list_id};
use crate::recent::RecentReads;

pub mod events;
mod national;
pub mod retro;
pub mod service;

pub use events::{AlertFilter, events};
pub use service::{AlertsService, WatchGrant};

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
    read_id: String,
    vrm: nadc_core::Vrm,
    observed_at: Timestamp,
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
    /// Where convoy alerts are logged (through the replicated log in
    /// replicated mode); set once the node's changes are set up.
    pub changes: std::sync::OnceLock<Arc<Changes>>,
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
        for r in reads.iter_mut() {
            // Entries in force when the read was received: the same on
            // every replica applying the read, whenever it applies it.
            let now = r.received_at;
            for hit in matcher.matches(&r.read.vrm, now, r.position, r.read.observed_at) {
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
        for (i, earlier) in earlier_in_batch(reads, &rule) {
            reads[i].earlier_in_batch = earlier;
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
    /// reads move into the store: the reads that may raise alerts.
    pub fn brief(&self, reads: &[NewRead]) -> Vec<Brief> {
        reads
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                !r.alerts.is_empty() || r.earlier_in_batch.iter().any(|c| c.flag.is_some())
            })
            .map(|(index, r)| Brief {
                index,
                read_id: r.read.read_id.clone(),
                vrm: r.read.vrm.clone(),
                observed_at: r.read.observed_at,
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

    /// After the append: announces new alerts, and, if `decide` (the
    /// node that took the batch: in replicated mode one node decides for
    /// every replica), starts convoy analysis for hits on entries flagged
    /// for it.
    pub fn after_append(
        self: &Arc<Self>,
        force: &ForceId,
        briefs: Vec<Brief>,
        outcomes: &[Appended],
        decide: bool,
    ) {
        let stored: Vec<Brief> = briefs
            .into_iter()
            .filter(|b| matches!(outcomes.get(b.index), Some(Appended::Stored { .. })))
            .collect();
        // (Every alert of the batch was logged with its reads.)
        if !stored.is_empty() {
            self.hub.notify(self.store.last_alert());
        }
        if !decide {
            return;
        }
        for b in stored {
            for trigger in b.convoy {
                let me = self.clone();
                let read = (b.observed_at.day(), force.clone(), b.read_id.clone());
                let (target, at) = (b.vrm.clone(), b.observed_at);
                tokio::spawn(async move {
                    let analyst = me.clone();
                    let decided = tokio::task::spawn_blocking(move || {
                        analyst.convoy_alert(trigger, target, at)
                    })
                    .await;
                    let detail = match decided {
                        Ok(Ok(Some(detail))) => detail,
                        Ok(Ok(None)) => return,
                        Ok(Err(e)) => {
                            warn!(error = %e, "real-time convoy analysis failed");
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, "real-time convoy analysis failed");
                            return;
                        }
                    };
                    let alert = LoggedAlert {
                        read,
                        raised_at: me.clock.now(),
                        detail,
                    };
                    let Some(changes) = me.changes.get() else {
                        warn!(
                            "a convoy alert decided before the node's changes were set up: not logged"
                        );
                        return;
                    };
                    if let Err(e) = changes.submit(Change::LogAlerts(vec![alert])).await {
                        warn!(error = %Status::from(e), "a convoy alert could not be logged");
                    }
                });
            }
        }
    }

    /// Analyses the target's recent reads for companions: the convoy alert
    /// naming them, when one of them was not named by the last convoy alert
    /// for this target and list (so a target read fifty times a day raises
    /// an alert when a new companion appears, not fifty).
    fn convoy_alert(
        &self,
        trigger: ConvoyTrigger,
        target: nadc_core::Vrm,
        at: Timestamp,
    ) -> Result<Option<AlertDetail>, nadc_query::QueryError> {
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
                return Ok(None);
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
        Ok(Some(AlertDetail::Convoy {
            list,
            purpose,
            target,
            action,
            look_back_s: c.convoy_look_back_s,
            companions,
        }))
    }
}

/// Most earlier reads of its VRM in a batch a read carries for the clone
/// check: the nearest stored new decides, so more matter only when that
/// many of them are duplicates.
const EARLIER_IN_BATCH: usize = 8;

/// For each read of `reads` with earlier reads (in capture time, then batch
/// order) of its VRM in the batch: those, nearest first, each with the
/// clone flag the pair raises under `rule`.
fn earlier_in_batch(
    reads: &[NewRead],
    rule: &CloneRule,
) -> Vec<(usize, Vec<nadc_store::BatchClone>)> {
    let mut by_vrm: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in reads.iter().enumerate() {
        by_vrm.entry(r.read.vrm.as_str()).or_default().push(i);
    }
    let mut out = Vec::new();
    for mut same in by_vrm.into_values().filter(|v| v.len() > 1) {
        same.sort_by_key(|i| (reads[*i].read.observed_at, *i));
        for (k, &b) in same.iter().enumerate().skip(1) {
            let later = &reads[b];
            let earlier = same[..k]
                .iter()
                .rev()
                .take(EARLIER_IN_BATCH)
                .map(|&a| {
                    let first = &reads[a];
                    let distance_m = first.position.distance_m(later.position);
                    let seconds = (later.read.observed_at.millis()
                        - first.read.observed_at.millis()) as f64
                        / 1000.0;
                    nadc_store::BatchClone {
                        earlier: a,
                        flag: rule.flags(distance_m, seconds).map(|speed_kmh| {
                            nadc_store::CloneFlag {
                                distance_m,
                                seconds,
                                speed_kmh,
                            }
                        }),
                    }
                })
                .collect();
            out.push((b, earlier));
        }
    }
    out
}

/// The list filter of a convoy search naming a hotlist: its active entries.
pub fn hotlist_targets(
    registry: &HotlistRegistry,
    r: &pb::HotlistRef,
    caller_force: &ForceId,
    now: Timestamp,
) -> Result<Vec<nadc_core::Vrm>, ServiceError> {
    let id = list_id(Some(r), caller_force)?;
    if id.owner != *caller_force {
        return Err(ServiceError::denied(format!(
            "list {id} belongs to {}: a convoy search names only {caller_force}'s lists (another force's entries are its intelligence)",
            id.owner
        )));
    }
    let (_, entries) = registry
        .get(&id)
        .ok_or_else(|| ServiceError::not_found(format!("no list {id}")))?;
    Ok(entries
        .into_iter()
        .filter(|e| e.active_at(now))
        .map(|e| e.vrm)
        .collect())
}
