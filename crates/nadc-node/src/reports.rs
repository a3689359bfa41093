//! Results analysis and the transparency report: what a node's own records
//! say about its use, in aggregates only (no VRM, no read).
//!
//! Three sources, each read once: the alert log with the verification
//! states (hits per list, their verification and outcomes, by the day the
//! read was captured), the audit chain (searches per force, purpose, case
//! and month; deletions by retention; holds placed and released) and the
//! store's exact reads held per capture day and force. A search relayed by
//! a peer is audited here with the node that relayed it (`"via"`): it is
//! counted where it was asked, so national figures summed over every node
//! count each search once.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use nadc_core::Timestamp;
use nadc_core::alert::{AlertDetail, AlertState, HitOutcome, Verification};
use nadc_core::audit::Outcome;
use nadc_store::{Store, StoreError};

/// How hits on one list fared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HitTally {
    /// Live hits.
    pub hits: u64,
    /// Verified as the listed VRM, and as a misread.
    pub confirmed: u64,
    /// A misread.
    pub rejected: u64,
    /// Outcomes recorded on confirmed hits, in [`HitOutcome::ALL`] order.
    pub outcomes: [u64; 4],
}

impl HitTally {
    fn add(&mut self, state: Option<&AlertState>) {
        self.hits += 1;
        let Some(s) = state else {
            return;
        };
        match s.state {
            Verification::Confirmed => {
                self.confirmed += 1;
                if let Some(o) = s.outcome {
                    let i = HitOutcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
                    self.outcomes[i] += 1;
                }
            }
            Verification::Rejected => self.rejected += 1,
            Verification::Unverified => {}
        }
    }
}

/// Searches of one force, purpose, case and month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchCount {
    /// Made (answered or failed).
    pub searches: u64,
    /// Refused.
    pub refused: u64,
    /// Rows they returned.
    pub rows: u64,
}

/// A node's aggregates over a span of UTC days.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tallies {
    /// Per (list owner, list name, capture month).
    pub hits: BTreeMap<(String, String, String), HitTally>,
    /// Per (force, purpose, case reference, month).
    pub searches: BTreeMap<(String, String, String, String), SearchCount>,
    /// Reads held per (owning force, capture month).
    pub reads: BTreeMap<(String, String), u64>,
    /// Reads held per capture month, every force.
    pub reads_all: BTreeMap<String, u64>,
    /// Reads deleted by retention per (owning force, month deleted).
    pub deleted: BTreeMap<(String, String), u64>,
    /// Holds placed and released per (the user's force, month).
    pub holds_placed: BTreeMap<(String, String), u64>,
    /// As above, released.
    pub holds_released: BTreeMap<(String, String), u64>,
}

/// The UTC month of a day, "YYYY-MM".
pub fn month_of_day(day: u32) -> String {
    month_of(Timestamp::from_day_ms(day, 0))
}

/// The UTC month of an instant, "YYYY-MM".
pub fn month_of(t: Timestamp) -> String {
    t.to_rfc3339().chars().take(7).collect()
}

/// Whether an audit action is a search or analysis (not its opening
/// entry).
fn is_search(action: &str) -> bool {
    action.starts_with("search.") && !action.ends_with(".opened")
}

/// How an audited search counts, from its action and query. A search is
/// counted once, where it was asked; its rows are those each node's store
/// gave it (so summed over every node they are counted once too). So: only
/// its rows for a peer's part (`"via"`) or the second pass of an analysis
/// (`"pass": "reads"`); not at all for the entry where a national search
/// was asked recording what the peers gave (`*.national`); else once.
#[derive(Debug, PartialEq, Eq)]
enum Counts {
    Not,
    RowsOnly,
    Once,
}

fn counts(action: &str, query: &str) -> Counts {
    let q = serde_json::from_str::<serde_json::Value>(query).unwrap_or_default();
    if action.ends_with(".national") && action != "search.national" {
        // What the peers gave a national search, audited again where it
        // was asked: each peer counted those rows itself.
        Counts::Not
    } else if q.get("via").is_some() {
        // A peer's part of a national search: its rows, drawn from this
        // node's store (the search is counted where it was asked).
        Counts::RowsOnly
    } else if q.get("pass").and_then(|p| p.as_str()) == Some("reads") {
        Counts::RowsOnly
    } else {
        Counts::Once
    }
}

/// Positions looked up per call for verification states.
const STATES_CHUNK: usize = 4096;

/// Reads the node's records for the UTC days `from_day..=to_day`, counting
/// searches under the `purposes` the node knows (any other text a request
/// gave, e.g. one refused for it, counts as "other": a report never
/// repeats a requester's free text). Blocking.
pub fn tally(
    store: &dyn Store,
    from_day: u32,
    to_day: u32,
    purposes: &[String],
) -> Result<Tallies, StoreError> {
    let mut t = Tallies::default();
    // Hits, by the capture day of the read that raised them.
    let mut pending: Vec<(u64, (String, String, String))> = Vec::new();
    let flush = |pending: &mut Vec<(u64, (String, String, String))>,
                 t: &mut Tallies|
     -> Result<(), StoreError> {
        let positions: Vec<u64> = pending.iter().map(|(p, _)| *p).collect();
        let states = store.alert_states(&positions)?;
        for ((_, key), state) in pending.drain(..).zip(states) {
            t.hits.entry(key).or_default().add(state.as_ref());
        }
        Ok(())
    };
    let mut failed = None;
    store.alerts(0, &mut |position, alert| {
        if let AlertDetail::Hit { list, .. } = &alert.detail
            && (from_day..=to_day).contains(&alert.read.day)
        {
            pending.push((
                position,
                (
                    list.owner.to_string(),
                    list.name.clone(),
                    month_of_day(alert.read.day),
                ),
            ));
            if pending.len() >= STATES_CHUNK
                && let Err(e) = flush(&mut pending, &mut t)
            {
                failed = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    flush(&mut pending, &mut t)?;
    // Reads held.
    for ((day, force), n) in store.reads_by_day(from_day, to_day)? {
        let month = month_of_day(day);
        *t.reads
            .entry((force.to_string(), month.clone()))
            .or_default() += n;
        *t.reads_all.entry(month).or_default() += n;
    }
    // The audit: searches, retention, holds.
    let (from, to) = (
        Timestamp::from_day_ms(from_day, 0),
        Timestamp::from_day_ms(to_day, 0).plus_millis(nadc_core::time::MS_PER_DAY - 1),
    );
    store.audit(1, &mut |chained| {
        let e = &chained.entry;
        if e.at < from || e.at > to {
            return ControlFlow::Continue(());
        }
        let month = month_of(e.at);
        let force = e.force.as_ref().map_or("", |f| f.as_str()).to_string();
        let how = if is_search(&e.action) {
            counts(&e.action, &e.query)
        } else {
            Counts::Not
        };
        if how != Counts::Not {
            let purpose = if purposes.contains(&e.purpose) {
                e.purpose.clone()
            } else {
                "other".to_string()
            };
            let c = t
                .searches
                .entry((force, purpose, e.case_ref.clone(), month))
                .or_default();
            match (&e.outcome, how) {
                (Outcome::Refused(_), Counts::Once) => c.refused += 1,
                (Outcome::Refused(_), _) => {}
                (_, how) => {
                    c.searches += u64::from(how == Counts::Once);
                    c.rows += e.returned.iter().map(|(_, n)| n).sum::<u64>();
                }
            }
        } else if e.action == "retention.delete" && e.outcome == Outcome::Ok {
            for (f, n) in &e.returned {
                *t.deleted.entry((f.to_string(), month.clone())).or_default() += n;
            }
        } else if e.outcome == Outcome::Ok && e.action == "hold.place" {
            *t.holds_placed.entry((force, month)).or_default() += 1;
        } else if e.outcome == Outcome::Ok && e.action == "hold.release" {
            *t.holds_released.entry((force, month)).or_default() += 1;
        }
        ControlFlow::Continue(())
    })?;
    Ok(t)
}

/// Holds in force now per case-owning force: (cases, reads held).
pub fn holds_in_force(store: &dyn Store) -> Result<BTreeMap<String, (u64, u64)>, StoreError> {
    let mut cases: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut reads: BTreeMap<String, u64> = BTreeMap::new();
    for (_, holders) in store.holds()? {
        let mut owners = std::collections::BTreeSet::new();
        for c in holders.into_iter().flatten() {
            cases
                .entry(c.owner.to_string())
                .or_default()
                .insert(c.case_ref.clone());
            owners.insert(c.owner.to_string());
        }
        for o in owners {
            *reads.entry(o).or_default() += 1;
        }
    }
    Ok(cases
        .into_iter()
        .map(|(f, c)| {
            let n = reads.get(&f).copied().unwrap_or_default();
            (f, (c.len() as u64, n))
        })
        .collect())
}

/// A count as published: suppressed when between 1 and `min - 1`.
pub fn published(value: u64, min: u64) -> (u64, bool) {
    if value > 0 && value < min {
        (0, true)
    } else {
        (value, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_suppression() {
        let t = Timestamp::parse_rfc3339("2026-11-30T23:59:59Z").unwrap();
        assert_eq!(month_of(t), "2026-11");
        assert_eq!(month_of_day(t.day() + 1), "2026-12");
        assert_eq!(published(0, 10), (0, false));
        assert_eq!(published(9, 10), (0, true));
        assert_eq!(published(10, 10), (10, false));
    }

    #[test]
    fn searches_are_counted_once_where_asked() {
        assert!(is_search("search.geo"));
        assert!(is_search("search.pattern"));
        assert!(!is_search("search.geo.opened"));
        assert!(!is_search("hotlist.add"));
        let g = "search.geo";
        assert_eq!(counts(g, r#"{"vrm":"x","via":"node-1"}"#), Counts::RowsOnly);
        assert_eq!(counts(g, r#"{"vrm":"x"}"#), Counts::Once);
        assert_eq!(counts(g, r#"{"pass":"reads"}"#), Counts::RowsOnly);
        assert_eq!(counts(g, r#"{"pass":"tally"}"#), Counts::Once);
        assert_eq!(counts(g, "not json"), Counts::Once);
        assert_eq!(counts("search.geo.national", "{}"), Counts::Not);
        assert_eq!(counts("search.national", "{}"), Counts::Once);
    }
}
