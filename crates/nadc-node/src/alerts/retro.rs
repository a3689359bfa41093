//! Retrospective hits: when entries are added to a hotlist, the reads
//! already stored in a look-back that the live matcher would have hit had
//! the entries been listed then, logged as hits marked retrospective.
//!
//! Matching is the live matcher's own (a matcher built of the list and its
//! new entries), so a retrospective hit is exactly a hit the read would
//! raise if it arrived now; candidates come from the VRM index (the exact
//! timeline, or for a fuzzy list the fuzzy VRM search, a superset the
//! matcher then narrows). A read already hit on the list for the same
//! listed VRM (live, or by an earlier look-back) is not hit again.

use std::ops::ControlFlow;

use nadc_core::alert::{Alert, AlertDetail};
use nadc_core::hotlist::{Hotlist, HotlistEntry, HotlistMatcher};
use nadc_core::vrm_match::{ConfusableGroups, Pattern};
use nadc_core::{StoredRead, Timestamp};
use nadc_query::{QueryError, VrmQuery, vrm_search_stream};
use nadc_store::Store;

/// What a look-back found.
pub struct Retro {
    /// The alerts to log, oldest read first.
    pub alerts: Vec<Alert>,
    /// Whether more reads matched than `cap`: the newest were kept.
    pub truncated: bool,
}

/// The retrospective hits of `entries` (just added to `list`) among the
/// reads captured in `from..=to`, raised at `now`; at most `cap`.
pub fn retrospective_hits(
    store: &dyn Store,
    list: &Hotlist,
    entries: &[HotlistEntry],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    cap: usize,
) -> Result<Retro, QueryError> {
    let matcher = HotlistMatcher::new(vec![(list.clone(), entries.to_vec())]);
    let mut found: Vec<(StoredRead, AlertDetail)> = Vec::new();
    let mut keep = |read: StoredRead| {
        for hit in matcher.matches(&read.read.vrm, now, read.position, read.read.observed_at) {
            found.push((
                read.clone(),
                AlertDetail::RetroHit {
                    list: hit.list.id.clone(),
                    purpose: hit.list.purpose.clone(),
                    entry: hit.entry.clone(),
                    matched: hit.matched,
                },
            ));
        }
    };
    for entry in entries {
        if list.fuzzy.confusable {
            let q = VrmQuery {
                pattern: Pattern::parse(entry.vrm.as_str())
                    .map_err(|e| QueryError::Invalid(e.to_string()))?,
                fuzzy: true,
                max_edits: list.fuzzy.max_edits,
                groups: ConfusableGroups::default(),
                from,
                to,
                limit: usize::MAX,
                offset: 0,
                max_vrms: 10_000,
            };
            vrm_search_stream(store, &q, &mut |row| {
                keep(row.read);
                ControlFlow::Continue(())
            })?;
        } else {
            store.vrm_timeline(&entry.vrm, from, to, &mut |read| {
                keep(read);
                ControlFlow::Continue(())
            })?;
        }
    }
    // One alert per (read, entry): a read may match two new entries, and a
    // fuzzy search may meet a read twice.
    found.sort_by(|(a, x), (b, y)| {
        (a.read.observed_at, a.seq)
            .cmp(&(b.read.observed_at, b.seq))
            .then_with(|| entry_vrm(x).cmp(entry_vrm(y)))
    });
    found.dedup_by(|(a, x), (b, y)| a.seq == b.seq && entry_vrm(x) == entry_vrm(y));
    // A read already hit on this list for the same listed VRM (live, or by
    // an earlier look-back) is not hit again.
    let mut hit = std::collections::HashSet::new();
    store.alerts(0, &mut |_, a| {
        if let AlertDetail::Hit { list: l, entry, .. }
        | AlertDetail::RetroHit { list: l, entry, .. } = &a.detail
            && *l == list.id
        {
            hit.insert((a.read, entry.vrm.as_str().to_string()));
        }
        ControlFlow::Continue(())
    })?;
    found.retain(|(read, d)| !hit.contains(&(read.read_ref(), entry_vrm(d).to_string())));
    let truncated = found.len() > cap;
    let skip = found.len().saturating_sub(cap);
    let alerts = found
        .into_iter()
        .skip(skip)
        .map(|(read, detail)| Alert {
            raised_at: now,
            read: read.read_ref(),
            read_force: read.force.clone(),
            detail,
        })
        .collect();
    Ok(Retro { alerts, truncated })
}

fn entry_vrm(d: &AlertDetail) -> &str {
    match d {
        AlertDetail::RetroHit { entry, .. } => entry.vrm.as_str(),
        _ => "",
    }
}
