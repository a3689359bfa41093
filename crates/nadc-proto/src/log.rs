//! The replicated log's messages (`proto/nadc/v1/log.proto`): a batch of
//! validated reads as a node appends it, and back, as a replica applies it.
//!
//! A read goes into the log in its wire form and is validated again when
//! applied. Validation is a pure function of the read, so every replica
//! gets the read the node that took it validated (the round trip is
//! tested below); the checks that depend on the node (its clock, its
//! retention, its camera register) were made once, by that node, and what
//! they decided travels with the read: its position and the time it was
//! received.

use nadc_core::access::{Authorisation, Revocation};
use nadc_core::alert::{Alert, AlertDetail, AlertKind, AlertState};
use nadc_core::audit::AuditEntry;
use nadc_core::hotlist::{Hotlist, HotlistEntry, HotlistId};
use nadc_core::read::{Read, ReadInput};
use nadc_core::trigger::TriggerRule;
use nadc_core::{ForceId, GeoPoint, Timestamp, Vrm};
use serde::{Deserialize, Serialize};

use crate::{from_pb_time, pb, to_pb_time};

/// The wire form of a validated read (what [`ReadInput::validate`] turns
/// back into the same read).
pub fn read_to_pb(r: &Read) -> pb::Read {
    pb::Read {
        read_id: r.read_id.clone(),
        vrm: r.vrm_raw.clone(),
        observed_at: Some(to_pb_time(r.observed_at)),
        camera_id: r.camera_id.clone(),
        lat: r.position.map(|p| p.lat()),
        lon: r.position.map(|p| p.lon()),
        bearing: r.bearing.map(f64::from),
        lane: r.lane.map(u32::from),
        confidence: r.confidence,
        make: r.make.clone(),
        model: r.model.clone(),
        colour: r.colour.clone(),
        country: r.country.clone(),
        patch_image_ref: r.patch_image_ref.clone(),
        overview_image_ref: r.overview_image_ref.clone(),
        candidates: r.candidates.clone(),
    }
}

/// A batch of reads a node took for `force`, as a log entry.
pub struct LoggedBatch {
    /// The owning force.
    pub force: ForceId,
    /// The node that took it.
    pub origin_node: String,
    /// That node's number for the append.
    pub nonce: u64,
    /// When that node received it.
    pub received_at: Timestamp,
    /// The reads, each with the position it is stored under.
    pub reads: Vec<(Read, GeoPoint)>,
}

impl std::fmt::Debug for LoggedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Reads carry plates: only how many.
        f.debug_struct("LoggedBatch")
            .field("force", &self.force)
            .field("origin_node", &self.origin_node)
            .field("nonce", &self.nonce)
            .field("received_at", &self.received_at)
            .field("reads", &self.reads.len())
            .finish()
    }
}

/// A log entry that cannot be applied: written by another release, or
/// damaged. A replica stops at it rather than skip it.
#[derive(Debug, thiserror::Error)]
#[error("log entry not understood: {0}")]
pub struct BadEntry(pub String);

/// The log entry of `batch`.
pub fn batch_to_entry(batch: &LoggedBatch) -> pb::LogEntry {
    pb::LogEntry {
        entry: Some(pb::log_entry::Entry::Batch(pb::LoggedBatch {
            force: batch.force.as_str().to_string(),
            origin_node: batch.origin_node.clone(),
            nonce: batch.nonce,
            received_at_ms: batch.received_at.millis(),
            reads: batch
                .reads
                .iter()
                .map(|(r, p)| pb::LoggedRead {
                    read: Some(read_to_pb(r)),
                    lat_e6: p.lat_e6(),
                    lon_e6: p.lon_e6(),
                })
                .collect(),
        })),
    }
}

/// A change to the state replicas keep alike, as the node that took it
/// from its user checked it. Applying one is a function of the replica's
/// state alone, and applying it twice is applying it once (a replica that
/// stopped between a change and its position applies it again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A new hotlist (refused where one of its name exists).
    CreateList(Hotlist),
    /// A list's trigger rules replaced.
    SetRules {
        /// The list.
        list: HotlistId,
        /// Its new rules.
        rules: Vec<TriggerRule>,
    },
    /// A list and its entries deleted.
    DeleteList(HotlistId),
    /// Entries added to a list, or replacing those of their VRMs.
    PutEntries {
        /// The list.
        list: HotlistId,
        /// The entries.
        entries: Vec<HotlistEntry>,
    },
    /// Entries taken off a list.
    RemoveEntries {
        /// The list.
        list: HotlistId,
        /// Their VRMs.
        vrms: Vec<Vrm>,
    },
    /// Reads held for a case: each named as every replica knows it, by
    /// capture day (days since the epoch, UTC), owning force and the BOF's
    /// read id (a replica's numbers for its reads are its own).
    Hold {
        /// The case's force.
        owner: ForceId,
        /// Its reference.
        case_ref: String,
        /// The reads.
        reads: Vec<(u32, ForceId, String)>,
    },
    /// Every hold of a case released.
    Release {
        /// The case's force.
        owner: ForceId,
        /// Its reference.
        case_ref: String,
    },
    /// A supervisor's authorisation to search older data, granted (refused
    /// where its force has one of its id).
    Grant(Authorisation),
    /// An authorisation withdrawn.
    Revoke {
        /// Its force.
        force: ForceId,
        /// Its id.
        id: String,
        /// Who withdrew it, when and why.
        revocation: Revocation,
    },
    /// An alert's verification recorded, with the audit entry of the user
    /// who recorded it at the node that took it.
    Verify(Box<LoggedVerification>),
    /// Alerts one node decided (a real-time convoy analysis, a hotlist
    /// addition's look-back), logged by every replica holding their reads.
    LogAlerts(Vec<LoggedAlert>),
    /// A retention pass as of `at` under `policy`: the same reads expire
    /// on every replica, whatever its clock and its own settings.
    Retention {
        /// The instant the pass counts retention from.
        at: Timestamp,
        /// Days kept.
        policy: RetentionPolicy,
    },
}

/// An alert as the log carries it: the read it names as every replica
/// knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedAlert {
    /// The read: capture day (days since the epoch, UTC), owning force,
    /// the BOF's read id.
    pub read: (u32, ForceId, String),
    /// When it was raised.
    pub raised_at: Timestamp,
    /// What it says (a convoy, or a retrospective hit: what names no other
    /// read).
    pub detail: AlertDetail,
}

/// An alert's verification as the log carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedVerification {
    /// The alert, as every replica knows it.
    pub alert: AlertKey,
    /// Its new state.
    pub state: AlertState,
    /// The verifying user's audit entry.
    pub audit: AuditEntry,
}

/// An alert named as every replica knows it (a replica's positions are its
/// own): the read it is raised on, when, its kind, for a hit or a convoy
/// its list and listed VRM, and for a clone flag the other read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertKey {
    /// The read: capture day, owning force, the BOF's read id.
    pub read: (u32, ForceId, String),
    /// When it was raised.
    pub raised_at: Timestamp,
    /// Its kind.
    pub kind: AlertKind,
    /// Its list and the VRM listed (a hit's entry, a convoy's target).
    pub subject: Option<(HotlistId, Vrm)>,
    /// A clone flag's other read: capture day, owning force, read id.
    pub other: Option<(u32, ForceId, String)>,
}

impl AlertKey {
    /// The key of `alert`, raised on read `read`; `other`: a clone flag's
    /// other read.
    pub fn of(
        alert: &Alert,
        read: (u32, ForceId, String),
        other: Option<(u32, ForceId, String)>,
    ) -> Self {
        let subject = match &alert.detail {
            AlertDetail::Hit { list, entry, .. } | AlertDetail::RetroHit { list, entry, .. } => {
                Some((list.clone(), entry.vrm.clone()))
            }
            AlertDetail::Convoy { list, target, .. } => Some((list.clone(), target.clone())),
            AlertDetail::Clone { .. } => None,
        };
        Self {
            read,
            raised_at: alert.raised_at,
            kind: alert.detail.kind(),
            subject,
            other,
        }
    }

    /// Whether `alert` (on this key's read) may be the one this key names:
    /// all but a clone flag's other read, which the caller compares.
    pub fn names(&self, alert: &Alert) -> bool {
        alert.raised_at == self.raised_at
            && Self::of(alert, self.read.clone(), None).subject == self.subject
            && alert.detail.kind() == self.kind
    }
}

/// How long reads are kept: by default, and for particular forces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Days kept by default.
    pub default_days: u32,
    /// Days kept for particular forces.
    pub per_force: std::collections::BTreeMap<ForceId, u32>,
}

/// Most days a retention policy keeps reads (as a node's configuration
/// allows).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Most reads one hold names (as the Holds API takes them).
pub const MAX_HOLD_READS: usize = 10_000;

impl Change {
    /// Checks what a decoded change holds, as the node that took it did.
    pub fn validate(&self) -> Result<(), BadEntry> {
        let bad = |e: nadc_core::hotlist::HotlistError| BadEntry(format!("change: {e}"));
        match self {
            Change::CreateList(list) => list.validate().map_err(bad),
            Change::SetRules { rules, .. } => rules.iter().enumerate().try_for_each(|(i, r)| {
                r.validate()
                    .map_err(|e| BadEntry(format!("change: rules[{i}]: {e}")))
            }),
            Change::PutEntries { entries, .. } => {
                entries.iter().try_for_each(|e| e.validate().map_err(bad))
            }
            Change::Hold {
                case_ref, reads, ..
            } => {
                if case_ref.trim().is_empty() || reads.len() > MAX_HOLD_READS {
                    return Err(BadEntry(format!(
                        "hold: a case reference and at most {MAX_HOLD_READS} reads"
                    )));
                }
                match reads.iter().position(|(_, _, id)| id.is_empty()) {
                    Some(i) => Err(BadEntry(format!("hold: read {i} has no read id"))),
                    None => Ok(()),
                }
            }
            Change::Release { case_ref, .. } if case_ref.trim().is_empty() => {
                Err(BadEntry("release: a case reference is required".into()))
            }
            Change::Retention { policy, .. }
                if !(1..=MAX_RETENTION_DAYS).contains(&policy.default_days)
                    || policy
                        .per_force
                        .values()
                        .any(|d| !(1..=MAX_RETENTION_DAYS).contains(d)) =>
            {
                Err(BadEntry(format!(
                    "retention: days kept must be 1 to {MAX_RETENTION_DAYS}"
                )))
            }
            Change::LogAlerts(alerts) => alerts.iter().enumerate().try_for_each(|(i, a)| match &a
                .detail
            {
                AlertDetail::Convoy { .. } => Ok(()),
                AlertDetail::RetroHit { entry, .. } => entry
                    .validate()
                    .map_err(|e| BadEntry(format!("alert {i}: {e}"))),
                _ => Err(BadEntry(format!(
                    "alert {i}: only convoy alerts and retrospective hits are logged on their own"
                ))),
            }),
            Change::Grant(a) if a.id.trim().is_empty() => {
                Err(BadEntry("grant: an authorisation id is required".into()))
            }
            Change::Revoke { id, revocation, .. } => {
                if id.trim().is_empty() {
                    return Err(BadEntry("revoke: an authorisation id is required".into()));
                }
                revocation
                    .validate()
                    .map_err(|e| BadEntry(format!("revoke: {e}")))
            }
            Change::Verify(v) if v.state.note.chars().any(char::is_control) => {
                Err(BadEntry("verify: a note with control characters".into()))
            }
            Change::DeleteList(_)
            | Change::Verify(_)
            | Change::Grant(_)
            | Change::RemoveEntries { .. }
            | Change::Release { .. }
            | Change::Retention { .. } => Ok(()),
        }
    }
}

/// A change a node took, as a log entry.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedChange {
    /// The node that took it.
    pub origin_node: String,
    /// That node's number for the append.
    pub nonce: u64,
    /// The change.
    pub change: Change,
}

/// The log entry of `change`.
pub fn change_to_entry(change: &LoggedChange) -> Result<pb::LogEntry, BadEntry> {
    let bytes = postcard::to_stdvec(&change.change)
        .map_err(|e| BadEntry(format!("change does not encode: {e}")))?;
    Ok(pb::LogEntry {
        entry: Some(pb::log_entry::Entry::Change(pb::LoggedChange {
            origin_node: change.origin_node.clone(),
            nonce: change.nonce,
            change: bytes,
        })),
    })
}

/// What a log entry holds.
#[derive(Debug)]
pub enum Entry {
    /// A batch of reads.
    Batch(LoggedBatch),
    /// A change to the replicas' shared state.
    Change(Box<LoggedChange>),
}

/// Decodes a log entry.
pub fn entry_from_pb(e: pb::LogEntry) -> Result<Entry, BadEntry> {
    match e.entry {
        Some(pb::log_entry::Entry::Batch(b)) => {
            let force = ForceId::new(&b.force)
                .map_err(|e| BadEntry(format!("force {:?}: {e}", b.force)))?;
            let received_at = (0..=Timestamp::MAX.millis())
                .contains(&b.received_at_ms)
                .then(|| Timestamp::from_millis(b.received_at_ms))
                .ok_or_else(|| BadEntry(format!("received_at_ms {}", b.received_at_ms)))?;
            let reads = b
                .reads
                .into_iter()
                .enumerate()
                .map(|(i, lr)| {
                    let position = GeoPoint::from_micro(lr.lat_e6, lr.lon_e6)
                        .map_err(|e| BadEntry(format!("read {i}: position: {e}")))?;
                    let wire = lr
                        .read
                        .ok_or_else(|| BadEntry(format!("read {i}: missing")))?;
                    if wire.observed_at.as_ref().and_then(from_pb_time).is_none() {
                        return Err(BadEntry(format!("read {i}: observed_at")));
                    }
                    let read = ReadInput::from(wire)
                        .validate()
                        .map_err(|e| BadEntry(format!("read {i}: {}", e.code)))?;
                    Ok((read, position))
                })
                .collect::<Result<_, _>>()?;
            Ok(Entry::Batch(LoggedBatch {
                force,
                origin_node: b.origin_node,
                nonce: b.nonce,
                received_at,
                reads,
            }))
        }
        Some(pb::log_entry::Entry::Change(c)) => {
            let change: Change = postcard::from_bytes(&c.change)
                .map_err(|e| BadEntry(format!("change does not decode: {e}")))?;
            change.validate()?;
            Ok(Entry::Change(Box::new(LoggedChange {
                origin_node: c.origin_node,
                nonce: c.nonce,
                change,
            })))
        }
        None => Err(BadEntry("empty entry".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[A-Za-z][A-Za-z0-9 ]{0,12}")
    }

    prop_compose! {
        fn wire_read()(
            read_id in "[a-z0-9-]{1,20}",
            vrm in "[A-Z]{2}[0-9]{2} ?[A-Z]{3}",
            ms in 0i64..4_000_000_000_000,
            camera_id in "[A-Z0-9-]{1,12}",
            pos in proptest::option::of((-89.9f64..89.9, -179.9f64..179.9)),
            bearing in proptest::option::of(0u16..360),
            lane in proptest::option::of(0u32..17),
            confidence in proptest::option::of(0f32..100.0),
            make in opt_text(), model in opt_text(), colour in opt_text(),
            country in proptest::option::of("[A-Z]{1,3}"),
            patch in opt_text(), overview in opt_text(),
            candidates in proptest::collection::vec("[A-Z]{2}[0-9]{2}[A-Z]{3}", 0..4),
        ) -> pb::Read {
            pb::Read {
                read_id, vrm,
                observed_at: Some(to_pb_time(Timestamp::from_millis(ms))),
                camera_id,
                lat: pos.map(|p| p.0), lon: pos.map(|p| p.1),
                bearing: bearing.map(f64::from), lane, confidence,
                make, model, colour, country,
                patch_image_ref: patch, overview_image_ref: overview,
                candidates,
            }
        }
    }

    proptest! {
        /// A read validated by the node that took it is the same read once
        /// a replica has decoded and validated it again.
        #[test]
        fn a_validated_read_survives_the_log(
            wire in wire_read(), lat in -89_000_000i32..89_000_000, lon in -179_000_000i32..179_000_000,
            nonce in any::<u64>(), received in 0i64..4_000_000_000_000,
        ) {
            let Ok(read) = ReadInput::from(wire).validate() else {
                return Ok(());
            };
            let position = GeoPoint::from_micro(lat, lon).unwrap();
            let batch = LoggedBatch {
                force: ForceId::new("AVON").unwrap(),
                origin_node: "node-1".into(),
                nonce,
                received_at: Timestamp::from_millis(received),
                reads: vec![(read.clone(), position)],
            };
            let bytes = prost::Message::encode_to_vec(&batch_to_entry(&batch));
            let decoded: pb::LogEntry = prost::Message::decode(bytes.as_slice()).unwrap();
            let Entry::Batch(back) = entry_from_pb(decoded).unwrap() else {
                panic!("a batch decoded as something else");
            };
            prop_assert_eq!(back.force, batch.force);
            prop_assert_eq!(back.origin_node, "node-1");
            prop_assert_eq!(back.nonce, nonce);
            prop_assert_eq!(back.received_at, batch.received_at);
            prop_assert_eq!(back.reads.len(), 1);
            prop_assert_eq!(back.reads[0].1, position);
            prop_assert_eq!(&back.reads[0].0, &read);
        }
    }

    #[test]
    fn an_entry_that_cannot_be_applied_is_refused_by_name() {
        let e = pb::LogEntry {
            entry: Some(pb::log_entry::Entry::Batch(pb::LoggedBatch {
                force: "AVON".into(),
                reads: vec![pb::LoggedRead {
                    read: Some(pb::Read {
                        read_id: "r1".into(),
                        vrm: "!!".into(),
                        observed_at: Some(to_pb_time(Timestamp::from_millis(1))),
                        ..Default::default()
                    }),
                    lat_e6: 51_000_000,
                    lon_e6: -2_000_000,
                }],
                ..Default::default()
            })),
        };
        let err = entry_from_pb(e).unwrap_err().to_string();
        assert!(
            err.contains("read 0") && err.contains("invalid_vrm"),
            "{err}"
        );
        assert!(entry_from_pb(pb::LogEntry::default()).is_err());
    }

    fn entry(vrm: &str, intel_ref: &str) -> HotlistEntry {
        HotlistEntry {
            vrm: Vrm::normalise(vrm).unwrap(),
            reason: "stolen".into(),
            intel_ref: intel_ref.into(),
            action: nadc_core::hotlist::Action::Stop,
            convoy: false,
            created_by: "alice".into(),
            created_at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(2_000),
        }
    }

    fn through_the_log(change: Change) -> Result<Entry, BadEntry> {
        let logged = LoggedChange {
            origin_node: "node-1".into(),
            nonce: 7,
            change,
        };
        let bytes = prost::Message::encode_to_vec(&change_to_entry(&logged).unwrap());
        entry_from_pb(prost::Message::decode(bytes.as_slice()).unwrap())
    }

    proptest! {
        /// A change comes out of the log as it went in.
        #[test]
        fn a_change_survives_the_log(
            vrms in proptest::collection::vec("[A-Z]{2}[0-9]{2}[A-Z]{3}", 1..5),
            refs in proptest::collection::vec("[A-Za-z0-9/-]{1,12}", 1..5),
        ) {
            let list = HotlistId::new(ForceId::new("AVON").unwrap(), "stolen").unwrap();
            let entries: Vec<HotlistEntry> =
                vrms.iter().zip(refs.iter().cycle()).map(|(v, r)| entry(v, r)).collect();
            let change = Change::PutEntries { list: list.clone(), entries };
            let Entry::Change(back) = through_the_log(change.clone()).unwrap() else {
                panic!("a change decoded as something else");
            };
            prop_assert_eq!(back.change, change);
            prop_assert_eq!(back.nonce, 7);
            let removal = Change::RemoveEntries {
                list,
                vrms: vrms.iter().map(|v| Vrm::normalise(v).unwrap()).collect(),
            };
            let Entry::Change(back) = through_the_log(removal.clone()).unwrap() else {
                panic!("a change decoded as something else");
            };
            prop_assert_eq!(back.change, removal);
        }
    }

    #[test]
    fn a_change_that_the_node_would_have_refused_is_refused_when_applied() {
        // An entry without its intelligence reference.
        let list = HotlistId::new(ForceId::new("AVON").unwrap(), "stolen").unwrap();
        let err = through_the_log(Change::PutEntries {
            list: list.clone(),
            entries: vec![entry("AB12CDE", " ")],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("intel_ref"), "{err}");
        // A VRM that is not one: the same encoding with text in its place.
        #[derive(Serialize)]
        #[allow(dead_code)]
        enum Forged {
            A,
            B,
            C,
            D,
            RemoveEntries { list: HotlistId, vrms: Vec<String> },
        }
        let bytes = postcard::to_stdvec(&Forged::RemoveEntries {
            list,
            vrms: vec!["AB12<script>".into()],
        })
        .unwrap();
        let e = pb::LogEntry {
            entry: Some(pb::log_entry::Entry::Change(pb::LoggedChange {
                origin_node: "node-1".into(),
                nonce: 1,
                change: bytes,
            })),
        };
        let err = entry_from_pb(e).unwrap_err().to_string();
        assert!(err.contains("does not decode"), "{err}");
    }

    #[test]
    fn holds_and_retention_passes_survive_the_log_within_their_bounds() {
        let avon = ForceId::new("AVON").unwrap();
        let hold = Change::Hold {
            owner: avon.clone(),
            case_ref: "OP-1".into(),
            reads: vec![(20_000, avon.clone(), "r1".into())],
        };
        let pass = Change::Retention {
            at: Timestamp::from_millis(1_800_000_000_000),
            policy: RetentionPolicy {
                default_days: 365,
                per_force: [(avon.clone(), 30)].into_iter().collect(),
            },
        };
        for change in [hold, pass] {
            let Entry::Change(back) = through_the_log(change.clone()).unwrap() else {
                panic!("a change decoded as something else");
            };
            assert_eq!(back.change, change);
        }
        let too_many = Change::Hold {
            owner: avon.clone(),
            case_ref: "OP-1".into(),
            reads: vec![(20_000, avon.clone(), "r".into()); MAX_HOLD_READS + 1],
        };
        assert!(through_the_log(too_many).is_err());
        let no_policy = Change::Retention {
            at: Timestamp::from_millis(0),
            policy: RetentionPolicy::default(),
        };
        assert!(through_the_log(no_policy).is_err());
    }
}
