//! Changes to the state replicas keep alike besides their reads: hotlists
//! and their entries, legal holds, supervisors' authorisations, retention
//! passes, alert verifications, and the alerts one node decides for all
//! (real-time convoys, retrospective hits).
//!
//! Invariants:
//! - One function applies each change ([`State::apply`]), whether this
//!   node took it from a user and there is no log (embedded mode), or a
//!   replica took it from the replicated log (every replica applies the
//!   same changes in the same order between the same reads, so they match
//!   reads against the same lists, hold the same reads and delete the same
//!   ones).
//! - Applying a change depends on the replica's state and the change alone
//!   (a retention pass carries its instant and its policy; a hold names
//!   reads by what every replica knows them by), and applying it again
//!   leaves the state as it did: a replica that stopped between a change
//!   and its log position applies it twice. (Alerts, which would be logged
//!   twice, are written with their log position instead.)
//! - A change refused (a list that exists already, or no longer does) is
//!   refused alike everywhere and changes nothing.

use std::sync::Arc;

use nadc_core::access::Authorisation;
use nadc_core::alert::{Alert, AlertDetail};
use nadc_core::hotlist::{Hotlist, HotlistEntry};
use nadc_proto::log::{Change, LoggedVerification};
use nadc_store::{CaseId, LogPosition, Store, StoreError};
use tracing::warn;

use crate::alerts::AlertHub;
use crate::error::ServiceError;
use crate::governance::{Actor, Governance};
use crate::hotlists::HotlistRegistry;
use crate::replication::Replication;
use crate::retention::{Report, Retention};

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The list as the change left it, with its entries (a list created,
    /// its rules set).
    List(Hotlist, Vec<HotlistEntry>),
    /// How many entries the change deleted, added or removed.
    Entries(u64),
    /// How many reads were newly held, or released.
    Holds(u64),
    /// Whether an authorisation granted is new (one of its id in its
    /// force stays as it was).
    Granted(bool),
    /// An authorisation as a revocation left it, and whether the
    /// revocation is new (none: no such authorisation).
    Revoked(Option<(Authorisation, bool)>),
    /// What a retention pass deleted.
    Retention(Report),
    /// The positions of the alerts logged (those whose reads this replica
    /// holds).
    Alerts(Vec<u64>),
    /// The position of the alert whose verification was recorded.
    Verified(u64),
}

/// What changes apply to.
pub struct State {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The lists.
    pub hotlists: Arc<HotlistRegistry>,
    /// Retention passes.
    pub retention: Arc<Retention>,
    /// The authorisations.
    pub governance: Arc<Governance>,
    /// Where new alert positions are announced.
    pub hub: Arc<AlertHub>,
}

impl State {
    /// Applies `change`: what it did, or why it changed nothing; the outer
    /// error is the store failing. `mine`: this node took the change from
    /// its user, who is answered (and audits what needs it); a replica
    /// applying another node's retention pass audits it as its own. `at`:
    /// the change's position in the replicated log, written with what
    /// cannot be applied twice. Blocking.
    pub fn apply(
        &self,
        change: &Change,
        mine: bool,
        at: Option<&LogPosition>,
    ) -> Result<Result<Changed, ServiceError>, StoreError> {
        match change {
            Change::CreateList(_)
            | Change::SetRules { .. }
            | Change::DeleteList(_)
            | Change::PutEntries { .. }
            | Change::RemoveEntries { .. } => self.hotlists.apply(change),
            Change::Hold {
                owner,
                case_ref,
                reads,
            } => {
                let case = CaseId {
                    owner: owner.clone(),
                    case_ref: case_ref.clone(),
                };
                // Reads this replica does not hold (another force's, or
                // gone) are not held here.
                let refs: Vec<_> = self
                    .store
                    .find_reads(reads)?
                    .into_iter()
                    .flatten()
                    .collect();
                Ok(Ok(Changed::Holds(self.store.hold(&case, &refs)?)))
            }
            Change::Release { owner, case_ref } => {
                let case = CaseId {
                    owner: owner.clone(),
                    case_ref: case_ref.clone(),
                };
                Ok(Ok(Changed::Holds(self.store.release(&case)?)))
            }
            Change::Grant(a) => Ok(Ok(Changed::Granted(self.governance.apply_grant(a)?))),
            Change::Revoke {
                force,
                id,
                revocation,
            } => Ok(Ok(Changed::Revoked(
                self.governance.apply_revoke(force, id, revocation)?,
            ))),
            Change::Verify(v) => {
                let LoggedVerification {
                    alert,
                    state,
                    audit,
                } = v.as_ref();
                let gone = || {
                    Ok(Err(ServiceError::not_found(format!(
                        "the alert raised {} on read {} of {} is not logged",
                        alert.raised_at, alert.read.2, alert.read.1
                    ))))
                };
                let Some(read) = self.store.find_reads(std::slice::from_ref(&alert.read))?[0]
                else {
                    return gone();
                };
                let mut found = None;
                for (position, a) in self.store.alerts_of_read(read)? {
                    if a.read != read || !alert.names(&a) {
                        continue;
                    }
                    // A read's clone flags differ by their other read.
                    let other = match (&a.detail, &alert.other) {
                        (AlertDetail::Clone { other, .. }, Some(want)) => {
                            self.store.get_reads(&[*other])?.pop().is_some_and(|o| {
                                (o.read.observed_at.day(), &o.force, &o.read.read_id)
                                    == (want.0, &want.1, &want.2)
                            })
                        }
                        (_, None) => true,
                        _ => false,
                    };
                    if other {
                        found = Some(position);
                        break;
                    }
                }
                let Some(position) = found else {
                    return gone();
                };
                let (set, _) = self
                    .store
                    .set_alert_state(position, state, audit.clone(), at)?;
                if !set {
                    return gone();
                }
                self.hub.notify(self.store.last_alert());
                Ok(Ok(Changed::Verified(position)))
            }
            Change::LogAlerts(alerts) => {
                let ids: Vec<_> = alerts.iter().map(|a| a.read.clone()).collect();
                // Alerts on reads this replica does not hold are not its.
                let logged: Vec<Alert> = alerts
                    .iter()
                    .zip(self.store.find_reads(&ids)?)
                    .filter_map(|(a, read)| {
                        Some(Alert {
                            raised_at: a.raised_at,
                            read: read?,
                            read_force: a.read.1.clone(),
                            detail: a.detail.clone(),
                        })
                    })
                    .collect();
                let positions = match at {
                    Some(at) => self.store.log_alerts_logged(logged, at)?,
                    None => self.store.log_alerts(logged)?,
                };
                if !positions.is_empty() {
                    self.hub.notify(self.store.last_alert());
                }
                Ok(Ok(Changed::Alerts(positions)))
            }
            Change::Retention { at, policy } => {
                let report = self.retention.pass(*at, policy)?;
                if !mine && let Err(e) = self.retention.audit(&Actor::node(), &report, false) {
                    warn!(error = %e, "a retention pass from the log was applied but not audited");
                }
                Ok(Ok(Changed::Retention(report)))
            }
        }
    }
}

/// Where the node's services make changes: through the replicated log in
/// replicated mode (answered once this node's replica has applied them),
/// else straight to the state.
pub struct Changes {
    /// What changes apply to.
    pub state: Arc<State>,
    /// The log, in replicated mode.
    pub replication: Option<Arc<Replication>>,
}

impl Changes {
    /// Makes `change`: what it did, or why it did not.
    pub async fn submit(&self, change: Change) -> Result<Changed, ServiceError> {
        if let Some(r) = &self.replication {
            return r.change(change).await;
        }
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.apply(&change, true, None))
            .await
            .map_err(|e| ServiceError::internal(format!("change task failed: {e}")))?
            .map_err(ServiceError::from)?
    }

    /// Whether changes go through a replicated log.
    pub fn replicated(&self) -> bool {
        self.replication.is_some()
    }
}
