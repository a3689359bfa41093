//! Cases belong to a force: who may see and act on a case's register,
//! schedule, holds, material and consultations.
//!
//! Invariants:
//! - A case is named by its owner force and its reference ([`CaseId`]).
//!   A reference alone names the caller's own force's case: AVON's `OP-1`
//!   and KENT's `OP-1` are two cases. Another force's case is named with
//!   its owner in `case_force` (shown as `AVON/OP-1`).
//! - A case's members are its owner force and the forces it was shared
//!   with (by its owner's supervisor or disclosure officer; audited) and
//!   whose share has not since been ended (the same users; audited). Only
//!   members' users search under it, see its schedule and held reads, mark
//!   its material, record its consultations and hold its reads; only the
//!   owner's supervisors and disclosure officers release its holds.
//! - A case is opened by the first search under it by a user of its owner
//!   force; the opening and every share are written with their audit
//!   entries, in one durable batch.
//! - A search relayed by a peer for a user is under the case the user's
//!   own node resolved and checked (shares are recorded at the node where
//!   they are made).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::RwLock;

use nadc_core::{ForceId, Timestamp};
use nadc_store::keys::{self, CASE_OPENED, CASE_SHARED};
use nadc_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::error::ServiceError;
use crate::governance::Actor;

pub use nadc_store::CaseId;

/// The registry space of the case register (see `nadc_store::keys`).
pub const SPACE: &str = "case";

/// Who did something to a case, and when (ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// User name.
    pub by: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// For a share: this entry ends it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

#[derive(Clone, Default)]
struct CaseInfo {
    opened: Option<Done>,
    /// Forces it was shared with (besides its owner).
    members: BTreeMap<ForceId, Done>,
}

/// The node's cases: owners, openings and shares, kept in memory (they
/// are few) and written through to the store's case register.
#[derive(Debug, Default)]
pub struct Cases {
    cases: RwLock<BTreeMap<CaseId, CaseInfo>>,
}

impl std::fmt::Debug for CaseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseInfo")
            .field("members", &self.members.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn corrupt(detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: "case register",
        detail: detail.to_string(),
    }
}

/// Checks a case reference (1 to 64 characters, no control characters).
pub fn check_ref(case_ref: &str) -> Result<String, Status> {
    let c = case_ref.trim();
    if c.is_empty() || c.len() > nadc_core::access::MAX_REF_LEN || c.chars().any(char::is_control) {
        return Err(Status::from(ServiceError::invalid(
            "case_ref is required: 1 to 64 characters, no control characters",
        )));
    }
    Ok(c.to_string())
}

/// How `actor` names `case`: its reference if it is of the actor's force,
/// else `OWNER/REF` (as the audit records it).
pub fn name_for(actor: &Actor, case: &CaseId) -> String {
    if actor.force.as_ref() == Some(&case.owner) {
        case.case_ref.clone()
    } else {
        case.to_string()
    }
}

/// A refusal of a case to a force that is not a member of it.
pub fn not_member(case: &CaseId, force: &ForceId, doing: &str) -> Status {
    Status::from(ServiceError::denied(format!(
        "case {case} belongs to {} and is not shared with {force}: only the case's members may {doing} (the owner shares it with `nadc disclosure share`)",
        case.owner
    )))
}

impl Cases {
    /// Loads openings and shares from the store (blocking).
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let mut cases: BTreeMap<CaseId, CaseInfo> = BTreeMap::new();
        let mut err = None;
        for tag in [CASE_OPENED, CASE_SHARED] {
            store.registry(SPACE, &[tag], &mut |k, v| {
                let step = (|| {
                    let (_, owner, case_ref, rest) =
                        keys::decode_case_key(k).ok_or_else(|| corrupt("undecodable key"))?;
                    let id = CaseId {
                        owner: ForceId::new(owner).map_err(corrupt)?,
                        case_ref: case_ref.to_string(),
                    };
                    let done: Done = serde_json::from_slice(v).map_err(corrupt)?;
                    let info = cases.entry(id).or_default();
                    if tag == CASE_OPENED {
                        // The first opening (lowest audit sequence) stands.
                        info.opened.get_or_insert(done);
                    } else {
                        let sep = rest.iter().position(|b| *b == keys::SEP);
                        let member = sep
                            .and_then(|s| std::str::from_utf8(&rest[..s]).ok())
                            .ok_or_else(|| corrupt("undecodable share"))?;
                        // A member's entries come in audit order: a share,
                        // perhaps its end, perhaps a share again.
                        let member = ForceId::new(member).map_err(corrupt)?;
                        if done.revoked {
                            info.members.remove(&member);
                        } else {
                            info.members.entry(member).or_insert(done);
                        }
                    }
                    Ok(())
                })();
                match step {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        err = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
        }
        match err {
            Some(e) => Err(e),
            None => Ok(Self {
                cases: RwLock::new(cases),
            }),
        }
    }

    /// The case `actor` names by `case_ref` and `case_force` (empty: the
    /// actor's own force), if the actor's force is one of its members.
    /// `doing` says what for, in a refusal.
    pub fn resolve(
        &self,
        actor: &Actor,
        case_ref: &str,
        case_force: &str,
        doing: &str,
    ) -> Result<CaseId, Status> {
        let case = Self::named(actor, case_ref, case_force)?;
        let force = actor.force.as_ref().ok_or_else(|| {
            Status::from(ServiceError::denied(
                "cases belong to forces: a force user is needed",
            ))
        })?;
        if self.is_member(&case, force) {
            Ok(case)
        } else {
            Err(not_member(&case, force, doing))
        }
    }

    /// The case named, without checking membership.
    pub fn named(actor: &Actor, case_ref: &str, case_force: &str) -> Result<CaseId, Status> {
        let case_ref = check_ref(case_ref)?;
        let owner = if case_force.trim().is_empty() {
            actor.force.clone().ok_or_else(|| {
                Status::from(ServiceError::denied(
                    "cases belong to forces: a force user is needed",
                ))
            })?
        } else {
            ForceId::new(case_force)
                .map_err(|e| Status::from(ServiceError::invalid(format!("case_force: {e}"))))?
        };
        Ok(CaseId { owner, case_ref })
    }

    /// Whether `force` is one of `case`'s members.
    pub fn is_member(&self, case: &CaseId, force: &ForceId) -> bool {
        *force == case.owner
            || self
                .cases
                .read()
                .is_ok_and(|m| m.get(case).is_some_and(|c| c.members.contains_key(force)))
    }

    /// Whether a search has opened `case`.
    pub fn is_opened(&self, case: &CaseId) -> bool {
        self.cases
            .read()
            .is_ok_and(|m| m.get(case).is_some_and(|c| c.opened.is_some()))
    }

    /// The forces `case` is shared with, with who shared it and when.
    pub fn members(&self, case: &CaseId) -> Vec<(ForceId, Done)> {
        self.cases
            .read()
            .map(|m| {
                m.get(case)
                    .map(|c| {
                        c.members
                            .iter()
                            .map(|(f, d)| (f.clone(), d.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Who opened `case`, and when.
    pub fn opened(&self, case: &CaseId) -> Option<Done> {
        self.cases
            .read()
            .ok()
            .and_then(|m| m.get(case).and_then(|c| c.opened.clone()))
    }

    /// Notes an opening written to the store.
    pub fn note_opened(&self, case: &CaseId, done: Done) {
        if let Ok(mut m) = self.cases.write() {
            m.entry(case.clone())
                .or_default()
                .opened
                .get_or_insert(done);
        }
    }

    /// Notes a share written to the store.
    pub fn note_shared(&self, case: &CaseId, member: &ForceId, done: Done) {
        if let Ok(mut m) = self.cases.write() {
            m.entry(case.clone())
                .or_default()
                .members
                .entry(member.clone())
                .or_insert(done);
        }
    }

    /// Notes the end of a share written to the store.
    pub fn note_unshared(&self, case: &CaseId, member: &ForceId) {
        if let Ok(mut m) = self.cases.write()
            && let Some(c) = m.get_mut(case)
        {
            c.members.remove(member);
        }
    }
}

/// The registry entry opening `case` (the store appends the audit
/// sequence number of the search that opens it).
pub fn opening_entry(case: &CaseId, done: &Done) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    Ok((
        keys::case_prefix(CASE_OPENED, &case.owner, &case.case_ref),
        serde_json::to_vec(done).map_err(corrupt)?,
    ))
}

/// The registry entry sharing `case` with `member` (the store appends the
/// audit sequence number of the share).
pub fn share_entry(
    case: &CaseId,
    member: &ForceId,
    done: &Done,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    Ok((
        keys::case_share_key(&case.owner, &case.case_ref, member),
        serde_json::to_vec(done).map_err(corrupt)?,
    ))
}

/// A read's capture time as a timestamp of its day (for messages).
pub fn day_text(day: u32) -> String {
    Timestamp::from_day_ms(day, 0).to_rfc3339()[..10].to_string()
}
