//! Alerts: what the node raises as reads arrive (a hotlist hit, a convoy
//! around a hotlisted vehicle, a plate seen at two places too far apart for
//! the time between them), and the verification an operator records.
//!
//! Alerts are stored in a log with a node-local position, so a subscriber
//! that reconnects resumes from the last position it saw without missing
//! any.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hotlist::{Action, HotlistEntry, HotlistId};
use crate::identity::ForceId;
use crate::read::ReadRef;
use crate::time::Timestamp;
use crate::vrm::Vrm;
use crate::vrm_match::MatchKind;

/// What raised an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AlertDetail {
    /// A read matched a hotlist entry.
    Hit {
        /// The list.
        list: HotlistId,
        /// The list's purpose.
        purpose: String,
        /// The entry as it was when hit.
        entry: HotlistEntry,
        /// How the read's VRM matched the entry's.
        matched: MatchKind,
    },
    /// A hit on an entry flagged for convoy analysis found likely companions
    /// of the target in its recent reads.
    Convoy {
        /// The list.
        list: HotlistId,
        /// The list's purpose.
        purpose: String,
        /// The listed target (as read).
        target: Vrm,
        /// The hit entry's action.
        action: Action,
        /// How far back the analysis looked, in seconds.
        look_back_s: u32,
        /// Likely companions, best first.
        companions: Vec<CompanionBrief>,
    },
    /// The same VRM read at two places further apart than a vehicle could
    /// travel in the time between: a cloned plate or a misread.
    Clone {
        /// The other read.
        other: ReadRef,
        /// Distance between the two reads, metres.
        distance_m: f64,
        /// Time between them, seconds.
        seconds: f64,
        /// Implied speed, km/h (infinite when the times are equal).
        speed_kmh: f64,
    },
    /// A retrospective hit: a read stored before its VRM was listed, found
    /// in the look-back asked for when the entry was added. A hit in every
    /// other way (kind [`AlertKind::Hit`]). Last of the variants, so alerts
    /// logged before it existed still decode.
    RetroHit {
        /// The list.
        list: HotlistId,
        /// The list's purpose.
        purpose: String,
        /// The entry as it was when added.
        entry: HotlistEntry,
        /// How the read's VRM matched the entry's.
        matched: MatchKind,
    },
}

impl AlertDetail {
    /// The kind of alert.
    pub fn kind(&self) -> AlertKind {
        match self {
            AlertDetail::Hit { .. } | AlertDetail::RetroHit { .. } => AlertKind::Hit,
            AlertDetail::Convoy { .. } => AlertKind::Convoy,
            AlertDetail::Clone { .. } => AlertKind::Clone,
        }
    }

    /// The action of the hotlist entry involved, if any.
    pub fn action(&self) -> Option<Action> {
        match self {
            AlertDetail::Hit { entry, .. } | AlertDetail::RetroHit { entry, .. } => {
                Some(entry.action)
            }
            AlertDetail::Convoy { action, .. } => Some(*action),
            AlertDetail::Clone { .. } => None,
        }
    }

    /// Whether it is a retrospective hit.
    pub fn is_retrospective(&self) -> bool {
        matches!(self, AlertDetail::RetroHit { .. })
    }

    /// The hotlist involved, if any.
    pub fn list(&self) -> Option<&HotlistId> {
        match self {
            AlertDetail::Hit { list, .. }
            | AlertDetail::Convoy { list, .. }
            | AlertDetail::RetroHit { list, .. } => Some(list),
            AlertDetail::Clone { .. } => None,
        }
    }
}

/// A companion in a real-time convoy alert.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanionBrief {
    /// The companion's VRM.
    pub vrm: Vrm,
    /// Target reads it accompanied.
    pub co_occurrences: u32,
    /// Distinct cameras where it did.
    pub cameras: u32,
}

impl fmt::Debug for CompanionBrief {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompanionBrief")
            .field("vrm", &self.vrm)
            .field("co_occurrences", &self.co_occurrences)
            .field("cameras", &self.cameras)
            .finish()
    }
}

/// The kinds of alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// A hotlist hit.
    Hit,
    /// A real-time convoy.
    Convoy,
    /// A cloned plate.
    Clone,
}

impl AlertKind {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Hit => "hit",
            AlertKind::Convoy => "convoy",
            AlertKind::Clone => "clone",
        }
    }
}

impl FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hit" => Ok(AlertKind::Hit),
            "convoy" => Ok(AlertKind::Convoy),
            "clone" => Ok(AlertKind::Clone),
            other => Err(format!("{other:?} is not one of hit, convoy, clone")),
        }
    }
}

/// An alert as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// When the node raised it.
    pub raised_at: Timestamp,
    /// The read that raised it.
    pub read: ReadRef,
    /// The owning force of that read.
    pub read_force: ForceId,
    /// What raised it.
    pub detail: AlertDetail,
}

impl Alert {
    /// The stored reads the alert names: the read that raised it and, for
    /// a clone, the other read. Retention deletes the alert with the first
    /// of them to go.
    pub fn reads(&self) -> impl Iterator<Item = ReadRef> {
        let other = match self.detail {
            AlertDetail::Clone { other, .. } => Some(other),
            _ => None,
        };
        std::iter::once(self.read).chain(other)
    }
}

/// Whether an operator has checked a hit against the plate image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verification {
    /// Nobody has checked it yet.
    #[default]
    Unverified,
    /// The plate image shows the listed VRM.
    Confirmed,
    /// The plate image shows another VRM: a misread.
    Rejected,
}

impl Verification {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Unverified => "unverified",
            Verification::Confirmed => "confirmed",
            Verification::Rejected => "rejected",
        }
    }
}

impl FromStr for Verification {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unverified" => Ok(Verification::Unverified),
            "confirmed" | "confirm" => Ok(Verification::Confirmed),
            "rejected" | "reject" | "misread" => Ok(Verification::Rejected),
            other => Err(format!(
                "{other:?} is not one of unverified, confirmed, rejected"
            )),
        }
    }
}

/// What came of a confirmed hit, as the operator records it (results
/// analysis counts them; a rejected hit is a misread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HitOutcome {
    /// The vehicle was stopped (no arrest).
    Stopped,
    /// An arrest followed.
    Arrested,
    /// Seen, and no action was taken.
    NoAction,
    /// Nobody located the vehicle.
    NotLocated,
}

impl HitOutcome {
    /// Every outcome, in order.
    pub const ALL: [HitOutcome; 4] = [
        HitOutcome::Stopped,
        HitOutcome::Arrested,
        HitOutcome::NoAction,
        HitOutcome::NotLocated,
    ];

    /// The name as written on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            HitOutcome::Stopped => "stopped",
            HitOutcome::Arrested => "arrested",
            HitOutcome::NoAction => "no-action",
            HitOutcome::NotLocated => "not-located",
        }
    }
}

impl FromStr for HitOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        HitOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of stopped, arrested, no-action, not-located"))
    }
}

/// The latest verification recorded for an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The state.
    pub state: Verification,
    /// The user who set it.
    pub by: String,
    /// The user's force.
    pub by_force: ForceId,
    /// When.
    pub at: Timestamp,
    /// Their note (e.g. what the image shows).
    pub note: String,
    /// What came of it (confirmed hits only).
    pub outcome: Option<HitOutcome>,
}
