//! The alert log as subscribers see it: which alerts pass a watch's
//! filters and force scope, and the wire events built from them (with the
//! reads they name and their verification state).

use crate::error::ServiceError;
use std::collections::HashMap;
use std::ops::ControlFlow;

use nadc_core::alert::{Alert, AlertDetail, AlertKind, AlertState};
use nadc_core::hotlist::describe_substitutions;
use nadc_core::{ForceId, ReadRef, StoredRead};
use nadc_proto::hotlists::{
    action_from_pb, action_to_pb, entry_to_pb, kind_from_pb, kind_to_pb, list_ref_to_pb,
    state_to_pb,
};
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use tonic::Status;

/// Alerts sent to a subscriber per store visit.
pub const REPLAY_BATCH: usize = 256;

/// What a subscriber wants, within what it may see.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    lists: Vec<(Option<ForceId>, String)>,
    forces: Vec<ForceId>,
    actions: Vec<nadc_core::hotlist::Action>,
    kinds: Vec<AlertKind>,
    raised_since: Option<nadc_core::Timestamp>,
    /// Only alerts of this force's lists (and clones, scoped once their
    /// reads are known); none only for the node's own use.
    scope: Option<ForceId>,
}

impl AlertFilter {
    /// The filters a watch asked for, limited to the alerts `force` acts on.
    pub fn for_force(q: &pb::WatchRequest, force: ForceId) -> Result<Self, ServiceError> {
        Ok(Self {
            scope: Some(force),
            ..Self::from_pb(q)?
        })
    }

    fn from_pb(q: &pb::WatchRequest) -> Result<Self, ServiceError> {
        let lists = q
            .lists
            .iter()
            .map(|l| {
                let owner = if l.owner.trim().is_empty() {
                    None
                } else {
                    Some(ForceId::new(&l.owner).map_err(|e| {
                        ServiceError::invalid(format!("list owner {:?}: {e}", l.owner))
                    })?)
                };
                Ok((owner, l.name.trim().to_string()))
            })
            .collect::<Result<_, Status>>()?;
        let forces = q
            .forces
            .iter()
            .map(|f| ForceId::new(f).map_err(|e| ServiceError::invalid(format!("force: {e}"))))
            .collect::<Result<_, _>>()?;
        let actions = q
            .actions
            .iter()
            .map(|a| {
                action_from_pb(*a)
                    .ok_or_else(|| ServiceError::invalid(format!("action {a} is unknown")))
            })
            .collect::<Result<_, _>>()?;
        let kinds = q
            .kinds
            .iter()
            .map(|k| {
                kind_from_pb(*k)
                    .ok_or_else(|| ServiceError::invalid(format!("kind {k} is unknown")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            lists,
            forces,
            actions,
            kinds,
            raised_since: q.raised_since.as_ref().and_then(proto::from_pb_time),
            scope: None,
        })
    }

    /// Whether an alert passes.
    pub fn passes(&self, a: &Alert) -> bool {
        // A hit or a convoy is its list owner's; a clone either read's
        // owner's, which is known once its reads are fetched
        // (`WatchGrant::admit`).
        let list_owner = a.detail.list().map(|l| &l.owner);
        if self
            .scope
            .as_ref()
            .is_some_and(|f| list_owner.is_some_and(|o| o != f))
            || self.raised_since.is_some_and(|t| a.raised_at < t)
        {
            return false;
        }
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
pub fn logged_alert(store: &dyn Store, position: u64) -> Result<Option<Alert>, StoreError> {
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
        }
        | AlertDetail::RetroHit {
            list,
            purpose,
            entry,
            matched,
        } => {
            e.retrospective = a.detail.is_retrospective();
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

/// Reads up to [`REPLAY_BATCH`] alerts after `after`: the passing ones, and
/// the last position read (to continue from).
pub fn next_batch(
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
