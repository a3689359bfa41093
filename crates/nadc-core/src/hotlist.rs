//! Hotlists: lists of vehicles of interest, each entry backed by an
//! intelligence reference, and the matcher that checks every ingested read
//! against every active entry.
//!
//! A hit is not an identification: the matcher says how the read's VRM
//! matched the listed VRM (exactly, by confusable characters, or within an
//! edit) so the operator can compare the two before acting.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::geo::GeoPoint;
use crate::identity::ForceId;
use crate::time::Timestamp;
use crate::trigger::{CompiledRule, TriggerRule, admitted};
use crate::vrm::Vrm;
use crate::vrm_match::{ConfusableGroups, MatchKind, classify};

/// Longest hotlist name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest free text (reason, purpose, description, intelligence reference).
pub const MAX_TEXT_LEN: usize = 512;

/// A problem with a hotlist or an entry, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct HotlistError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> HotlistError {
    HotlistError {
        field,
        message: message.into(),
    }
}

/// A hotlist's identity: the owning force (from the creator's certificate)
/// and a name unique within that force.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HotlistId {
    /// The owning force.
    pub owner: ForceId,
    /// The list's name.
    pub name: String,
}

impl HotlistId {
    /// Checks the name: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
    pub fn new(owner: ForceId, name: &str) -> Result<Self, HotlistError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(bad(
                "name",
                format!("must be 1 to {MAX_NAME_LEN} characters, got {}", name.len()),
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(bad(
                "name",
                format!("{name:?} has {c:?}; use letters, digits, '-', '_' and '.'"),
            ));
        }
        Ok(Self {
            owner,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for HotlistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl fmt::Debug for HotlistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What an officer should do on a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Arrest the occupants.
    Arrest,
    /// Stop the vehicle.
    Stop,
    /// Notify the named unit; do not stop.
    Notify,
    /// Record the sighting for intelligence only; take no action.
    Intelligence,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 4] = [
        Action::Arrest,
        Action::Stop,
        Action::Notify,
        Action::Intelligence,
    ];

    /// The action's name as written in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Arrest => "arrest",
            Action::Stop => "stop",
            Action::Notify => "notify",
            Action::Intelligence => "intelligence",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = HotlistError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = lower.strip_suffix("-only").unwrap_or(&lower);
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == lower || (lower == "intel" && *a == Action::Intelligence))
            .ok_or_else(|| {
                bad(
                    "action",
                    format!("{s:?} is not one of arrest, stop, notify, intelligence"),
                )
            })
    }
}

/// How a list matches reads beyond the exact VRM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fuzzy {
    /// Also match VRMs that differ only by confusable characters.
    pub confusable: bool,
    /// Also match VRMs within this many edits (0 or 1) once confusable
    /// characters are treated as equal. Needs `confusable`.
    pub max_edits: u8,
}

impl Fuzzy {
    /// Exact matching only.
    pub const OFF: Fuzzy = Fuzzy {
        confusable: false,
        max_edits: 0,
    };

    /// Checks the combination.
    pub fn new(confusable: bool, max_edits: u8) -> Result<Self, HotlistError> {
        if max_edits > 1 {
            return Err(bad(
                "max_edits",
                format!("at most 1 edit on a live hotlist, got {max_edits}"),
            ));
        }
        if max_edits > 0 && !confusable {
            return Err(bad(
                "max_edits",
                "edits need fuzzy (confusable) matching on",
            ));
        }
        Ok(Self {
            confusable,
            max_edits,
        })
    }
}

/// A hotlist: who owns it, why it exists, and how it matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hotlist {
    /// Owner and name.
    pub id: HotlistId,
    /// Why the list exists (e.g. "serious crime", "missing persons").
    pub purpose: String,
    /// Free-text description.
    pub description: String,
    /// Fuzzy matching rules.
    pub fuzzy: Fuzzy,
    /// The user who created it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// Trigger rules: with any, a read hits only inside the area of one of
    /// them, in its period and hours (`crate::trigger`).
    pub rules: Vec<TriggerRule>,
}

impl Hotlist {
    /// Checks the free-text fields and the rules.
    pub fn validate(&self) -> Result<(), HotlistError> {
        required_text("purpose", &self.purpose)?;
        optional_text("description", &self.description)?;
        if self.rules.len() > crate::trigger::MAX_RULES {
            return Err(bad(
                "rules",
                format!(
                    "{} given; at most {}",
                    self.rules.len(),
                    crate::trigger::MAX_RULES
                ),
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.validate().map_err(|e| HotlistError {
                field: "rules",
                message: format!("rules[{i}]: {e}"),
            })?;
        }
        Ok(())
    }
}

/// One vehicle on a hotlist.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotlistEntry {
    /// The listed VRM (normalised).
    pub vrm: Vrm,
    /// Why the vehicle is of interest.
    pub reason: String,
    /// The intelligence reference supporting the marker (mandatory: a
    /// marker must be supported by reliable intelligence).
    pub intel_ref: String,
    /// What to do on a hit.
    pub action: Action,
    /// Run real-time convoy analysis when this entry is hit.
    pub convoy: bool,
    /// The user who added it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// The entry stops matching at this time.
    pub expires_at: Timestamp,
}

impl fmt::Debug for HotlistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotlistEntry")
            .field("vrm", &self.vrm)
            .field("action", &self.action)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl HotlistEntry {
    /// Checks the entry: reason and intelligence reference present, expiry
    /// after creation.
    pub fn validate(&self) -> Result<(), HotlistError> {
        required_text("reason", &self.reason)?;
        required_text("intel_ref", &self.intel_ref)?;
        if self.expires_at <= self.created_at {
            return Err(bad(
                "expires_at",
                format!(
                    "{} is not after the entry's creation time {}",
                    self.expires_at, self.created_at
                ),
            ));
        }
        Ok(())
    }

    /// Whether the entry still matches at `now`.
    pub fn active_at(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

fn required_text(field: &'static str, v: &str) -> Result<(), HotlistError> {
    if v.trim().is_empty() {
        return Err(bad(field, "is required"));
    }
    optional_text(field, v)
}

fn optional_text(field: &'static str, v: &str) -> Result<(), HotlistError> {
    if v.len() > MAX_TEXT_LEN {
        return Err(bad(
            field,
            format!("is {} bytes, at most {MAX_TEXT_LEN}", v.len()),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(bad(field, "contains control characters"));
    }
    Ok(())
}

/// A read's VRM matched a list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The list.
    pub list: &'a Hotlist,
    /// The entry.
    pub entry: &'a HotlistEntry,
    /// How the read's VRM matched the entry's.
    pub matched: MatchKind,
}

/// Describes where a read VRM differs from a listed VRM of the same length,
/// e.g. `list O read 0 at 3`; empty when they are equal or of different
/// lengths (an edit).
pub fn describe_substitutions(listed: &Vrm, read: &Vrm) -> String {
    let (a, b) = (listed.as_str().as_bytes(), read.as_str().as_bytes());
    if a.len() != b.len() {
        return String::new();
    }
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| format!("list {} read {} at {}", *x as char, *y as char, i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every entry of every list, indexed for matching one VRM in a few hash
/// lookups: exactly by VRM; for fuzzy lists by confusable skeleton and, for
/// lists allowing an edit, by every skeleton with one character deleted
/// (two strings are within one edit only if they share such a deletion
/// variant or one is a deletion variant of the other).
pub struct HotlistMatcher {
    groups: ConfusableGroups,
    lists: Vec<Hotlist>,
    /// Each list's trigger rules, compiled.
    rules: Vec<Vec<CompiledRule>>,
    /// (list index, entry).
    entries: Vec<(usize, HotlistEntry)>,
    exact: HashMap<String, Vec<u32>>,
    by_skeleton: HashMap<String, Vec<u32>>,
    by_deletion: HashMap<String, Vec<u32>>,
}

impl fmt::Debug for HotlistMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotlistMatcher")
            .field("lists", &self.lists.len())
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn deletions(s: &str) -> impl Iterator<Item = String> + '_ {
    (0..s.len()).map(move |i| {
        let mut d = String::with_capacity(s.len() - 1);
        d.push_str(&s[..i]);
        d.push_str(&s[i + 1..]);
        d
    })
}

impl HotlistMatcher {
    /// Indexes every entry of `lists`.
    pub fn new(lists: Vec<(Hotlist, Vec<HotlistEntry>)>) -> Self {
        let groups = ConfusableGroups::default();
        let mut m = Self {
            groups,
            lists: Vec::with_capacity(lists.len()),
            rules: Vec::with_capacity(lists.len()),
            entries: Vec::new(),
            exact: HashMap::new(),
            by_skeleton: HashMap::new(),
            by_deletion: HashMap::new(),
        };
        for (li, (list, entries)) in lists.into_iter().enumerate() {
            for entry in entries {
                let ei = m.entries.len() as u32;
                let v = entry.vrm.as_str();
                m.exact.entry(v.to_string()).or_default().push(ei);
                if list.fuzzy.confusable {
                    let skel = m.groups.skeleton(v);
                    if list.fuzzy.max_edits > 0 {
                        for d in deletions(&skel) {
                            m.by_deletion.entry(d).or_default().push(ei);
                        }
                    }
                    m.by_skeleton.entry(skel).or_default().push(ei);
                }
                m.entries.push((li, entry));
            }
            // Rules are checked when set; one that no longer compiles
            // (never expected) matches nothing rather than everything.
            let compiled: Result<Vec<_>, _> = list.rules.iter().map(CompiledRule::new).collect();
            m.rules
                .push(compiled.unwrap_or_else(|_| vec![CompiledRule::never()]));
            m.lists.push(list);
        }
        m
    }

    /// Entries indexed (active or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The lists indexed.
    pub fn lists(&self) -> &[Hotlist] {
        &self.lists
    }

    /// Every active entry (at `now`) that `vrm`, read at `place` at
    /// `observed`, matches (its list's trigger rules admitting the read),
    /// each with how it matched, in list then entry order.
    pub fn matches(
        &self,
        vrm: &Vrm,
        now: Timestamp,
        place: GeoPoint,
        observed: Timestamp,
    ) -> Vec<Hit<'_>> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let mut candidates: Vec<u32> = Vec::new();
        if let Some(e) = self.exact.get(vrm.as_str()) {
            candidates.extend(e);
        }
        if !self.by_skeleton.is_empty() {
            let skel = self.groups.skeleton(vrm.as_str());
            if !self.by_deletion.is_empty() {
                // The read is the entry with one character deleted.
                if let Some(e) = self.by_deletion.get(&skel) {
                    candidates.extend(e);
                }
                for d in deletions(&skel) {
                    // The entry is the read with one character deleted.
                    if let Some(e) = self.by_skeleton.get(&d) {
                        candidates.extend(e);
                    }
                    // One substitution (or a swap-like pair of edits, which
                    // classification then refuses).
                    if let Some(e) = self.by_deletion.get(&d) {
                        candidates.extend(e);
                    }
                }
            }
            if let Some(e) = self.by_skeleton.get(&skel) {
                candidates.extend(e);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter_map(|ei| {
                let (li, entry) = &self.entries[ei as usize];
                let list = &self.lists[*li];
                if !entry.active_at(now) || !admitted(&self.rules[*li], place, observed) {
                    return None;
                }
                let max_edits = if list.fuzzy.confusable {
                    list.fuzzy.max_edits
                } else {
                    0
                };
                let matched = classify(&self.groups, &entry.vrm, vrm, max_edits)?;
                if !list.fuzzy.confusable && matched != MatchKind::Exact {
                    return None;
                }
                Some(Hit {
                    list,
                    entry,
                    matched,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrm_match::bounded_edit_distance;
    use proptest::prelude::*;

    fn here() -> GeoPoint {
        GeoPoint::new(51.45, -2.58).unwrap()
    }

    fn force() -> ForceId {
        ForceId::new("AVON").unwrap()
    }

    fn list(name: &str, fuzzy: Fuzzy) -> Hotlist {
        Hotlist {
            id: HotlistId::new(force(), name).unwrap(),
            purpose: "serious crime".into(),
            description: String::new(),
            fuzzy,
            created_by: "hm".into(),
            created_at: Timestamp::from_millis(0),
            rules: Vec::new(),
        }
    }

    fn entry(vrm: &str, expires_ms: i64) -> HotlistEntry {
        HotlistEntry {
            vrm: Vrm::normalise(vrm).unwrap(),
            reason: "wanted".into(),
            intel_ref: "INT/1".into(),
            action: Action::Stop,
            convoy: false,
            created_by: "hm".into(),
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(expires_ms),
        }
    }

    fn v(s: &str) -> Vrm {
        Vrm::normalise(s).unwrap()
    }

    const LATER: i64 = 1_000_000;

    #[test]
    fn exact_list_matches_only_the_exact_vrm() {
        let m = HotlistMatcher::new(vec![(list("L", Fuzzy::OFF), vec![entry("AB12CDE", LATER)])]);
        let now = Timestamp::from_millis(5);
        assert_eq!(m.matches(&v("AB12CDE"), now, here(), now).len(), 1);
        assert!(m.matches(&v("AB12CDF"), now, here(), now).is_empty());
        assert!(m.matches(&v("A812CDE"), now, here(), now).is_empty());
    }

    #[test]
    fn expired_entries_do_not_match() {
        let m = HotlistMatcher::new(vec![(list("L", Fuzzy::OFF), vec![entry("AB12CDE", 100)])]);
        assert_eq!(
            m.matches(
                &v("AB12CDE"),
                Timestamp::from_millis(99),
                here(),
                Timestamp::from_millis(99)
            )
            .len(),
            1
        );
        assert!(
            m.matches(
                &v("AB12CDE"),
                Timestamp::from_millis(100),
                here(),
                Timestamp::from_millis(100)
            )
            .is_empty()
        );
    }

    #[test]
    fn fuzzy_list_labels_the_substitution() {
        let fuzzy = Fuzzy::new(true, 0).unwrap();
        let m = HotlistMatcher::new(vec![(list("L", fuzzy), vec![entry("AB12CDE", LATER)])]);
        let hits = m.matches(
            &v("A812CDE"),
            Timestamp::from_millis(5),
            here(),
            Timestamp::from_millis(5),
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].matched,
            MatchKind::Confusable { positions: vec![2] }
        );
        assert_eq!(
            describe_substitutions(&hits[0].entry.vrm, &v("A812CDE")),
            "list B read 8 at 2"
        );
        // One edit is not allowed on this list.
        assert!(
            m.matches(
                &v("AB12CD"),
                Timestamp::from_millis(5),
                here(),
                Timestamp::from_millis(5)
            )
            .is_empty()
        );
    }

    #[test]
    fn action_and_fuzzy_validation() {
        assert_eq!(
            "Intelligence-only".parse::<Action>().unwrap(),
            Action::Intelligence
        );
        assert!("detain".parse::<Action>().is_err());
        assert!(Fuzzy::new(true, 2).is_err());
        assert!(Fuzzy::new(false, 1).is_err());
        assert!(HotlistId::new(force(), "bad name").is_err());
        let mut e = entry("AB12CDE", LATER);
        e.intel_ref = " ".into();
        assert_eq!(e.validate().unwrap_err().field, "intel_ref");
        let e = entry("AB12CDE", 0);
        assert_eq!(e.validate().unwrap_err().field, "expires_at");
    }

    fn vrm_strategy() -> impl Strategy<Value = Vrm> {
        "[A-Z0-9]{2,8}".prop_map(|s| Vrm::normalise(&s).unwrap())
    }

    proptest! {
        /// The indexed matcher returns exactly the entries a brute-force
        /// comparison of the read with every entry returns.
        #[test]
        fn matcher_equals_brute_force(
            entries in proptest::collection::vec(vrm_strategy(), 1..40),
            reads in proptest::collection::vec(vrm_strategy(), 1..40),
            edits in 0u8..=1,
        ) {
            let groups = ConfusableGroups::default();
            let fuzzy = Fuzzy::new(true, edits).unwrap();
            let lists = vec![
                (list("exact", Fuzzy::OFF), entries.iter().map(|e| entry(e.as_str(), LATER)).collect()),
                (list("fuzzy", fuzzy), entries.iter().map(|e| entry(e.as_str(), LATER)).collect::<Vec<_>>()),
            ];
            let m = HotlistMatcher::new(lists);
            let now = Timestamp::from_millis(1);
            // Also probe with near-misses of the listed VRMs.
            let mut probes = reads.clone();
            for e in &entries {
                let s = e.as_str();
                probes.push(v(&s.replace('B', "8").replace('0', "O")));
                if s.len() > 2 {
                    probes.push(v(&s[1..]));
                }
            }
            for r in &probes {
                let got: Vec<(String, String, MatchKind)> = m
                    .matches(r, now, here(), now)
                    .into_iter()
                    .map(|h| (h.list.id.name.clone(), h.entry.vrm.as_str().to_string(), h.matched))
                    .collect();
                let mut want = Vec::new();
                for e in &entries {
                    if e == r {
                        want.push(("exact".to_string(), e.as_str().to_string(), MatchKind::Exact));
                    }
                }
                for e in &entries {
                    let (se, sr) = (groups.skeleton(e.as_str()), groups.skeleton(r.as_str()));
                    if bounded_edit_distance(se.as_bytes(), sr.as_bytes(), usize::from(edits)).is_some() {
                        let k = classify(&groups, e, r, edits).unwrap();
                        want.push(("fuzzy".to_string(), e.as_str().to_string(), k));
                    }
                }
                let mut got_sorted = got.clone();
                got_sorted.sort();
                got_sorted.dedup();
                want.sort();
                want.dedup();
                prop_assert_eq!(got_sorted, want, "read {}", r.as_str());
            }
        }
    }
}
