//! VRM searches: exact, wildcard (`?` one character, `*` any run) and
//! OCR-fuzzy (confusable characters, plus up to two edits). Every row says
//! how its VRM matched, and rows are ranked: exact, then confusable, then by
//! edit distance, then wildcard; within a rank by VRM, then capture time.
//!
//! Candidates come from the store's dictionary of distinct VRMs, ordered by
//! confusable skeleton: all confusable variants of a VRM are one prefix
//! scan; one edit is a prefix scan per skeleton in the one-edit ball; a
//! wildcard's literal prefix bounds its scan. Two edits, custom confusable
//! groups, or a wildcard with no literal prefix scan the whole dictionary
//! (distinct VRMs, not reads).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use nadc_core::vrm_match::{ConfusableGroups, MatchKind, Pattern, classify, edit_neighbours};
use nadc_core::{StoredRead, Timestamp, Vrm};
use nadc_store::Store;

use crate::{QueryError, ResultSummary};

/// A VRM search.
#[derive(Clone, Debug)]
pub struct VrmQuery {
    /// The VRM or wildcard pattern.
    pub pattern: Pattern,
    /// Also match confusable characters and up to `max_edits` edits.
    pub fuzzy: bool,
    /// Edits allowed when fuzzy (0 to 2).
    pub max_edits: u8,
    /// Confusable groups used when fuzzy.
    pub groups: ConfusableGroups,
    /// From (inclusive).
    pub from: Timestamp,
    /// To (inclusive).
    pub to: Timestamp,
    /// Most rows returned.
    pub limit: usize,
    /// Rows of the ranked result to skip first (paging).
    pub offset: usize,
    /// Most distinct VRMs a search may match before it is refused as too broad.
    pub max_vrms: usize,
}

/// A row: a read and how its VRM matched.
#[derive(Clone, Debug, PartialEq)]
pub struct VrmRow {
    /// The read.
    pub read: StoredRead,
    /// How its VRM matched.
    pub how: MatchKind,
}

/// A matched VRM with its reads in the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrmHit {
    /// The VRM.
    pub vrm: Vrm,
    /// How it matched.
    pub how: MatchKind,
    /// Reads in the window.
    pub reads: u64,
    /// First capture time in the window.
    pub first_seen: Timestamp,
    /// Last capture time in the window.
    pub last_seen: Timestamp,
}

/// The answer to a VRM search.
#[derive(Clone, Debug, Default)]
pub struct VrmResult {
    /// Rows, ranked: the page `offset..offset + limit`.
    pub rows: Vec<VrmRow>,
    /// Every matched VRM with reads in the window, ranked.
    pub vrms: Vec<VrmHit>,
    /// Counts of the rows returned.
    pub summary: ResultSummary,
    /// Matching reads in all, before the limit.
    pub total_rows: u64,
}

/// The VRMs the query matches, with how each matched.
fn candidates(store: &dyn Store, q: &VrmQuery) -> Result<BTreeMap<Vrm, MatchKind>, QueryError> {
    let default = ConfusableGroups::default();
    let mut out = BTreeMap::new();
    let max = q.max_vrms;
    let add = |out: &mut BTreeMap<Vrm, MatchKind>, v: &Vrm, how: MatchKind| {
        out.insert(v.clone(), how);
        if out.len() > max {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    if q.pattern.is_wildcard() {
        if q.fuzzy {
            return Err(QueryError::Invalid(
                "a wildcard pattern cannot also be fuzzy: use one or the other".into(),
            ));
        }
        let prefix = default.skeleton(q.pattern.literal_prefix());
        store.vrm_dict(&prefix, false, &mut |v| {
            if q.pattern.matches(v.as_str()) {
                add(&mut out, v, MatchKind::Wildcard)
            } else {
                ControlFlow::Continue(())
            }
        })?;
    } else {
        let query = Vrm::normalise(q.pattern.as_str())
            .map_err(|e| QueryError::Invalid(format!("vrm: {e}")))?;
        if !q.fuzzy {
            out.insert(query, MatchKind::Exact);
            return Ok(out);
        }
        if q.max_edits > 2 {
            return Err(QueryError::Invalid(format!(
                "max edits {} is too many: 0 to 2",
                q.max_edits
            )));
        }
        let consider = |out: &mut BTreeMap<Vrm, MatchKind>, v: &Vrm| match classify(
            &q.groups,
            &query,
            v,
            q.max_edits,
        ) {
            Some(how) => add(out, v, how),
            None => ControlFlow::Continue(()),
        };
        if q.groups != default || q.max_edits == 2 {
            store.vrm_dict("", false, &mut |v| consider(&mut out, v))?;
        } else {
            let skeleton = default.skeleton(query.as_str());
            let probes = if q.max_edits == 0 {
                vec![skeleton]
            } else {
                edit_neighbours(&skeleton, &default.skeleton_alphabet())
            };
            store.vrm_dict_whole(&probes, &mut |v| consider(&mut out, v))?;
        }
    }
    if out.len() > max {
        return Err(QueryError::TooBroad(format!(
            "the pattern matches more than {} distinct VRMs: make it more specific",
            q.max_vrms
        )));
    }
    Ok(out)
}

/// What a streamed VRM search reports after its rows.
#[derive(Clone, Debug, Default)]
pub struct VrmTotals {
    /// Every matched VRM with reads in the window, ranked.
    pub vrms: Vec<VrmHit>,
    /// Counts of the rows emitted.
    pub summary: ResultSummary,
    /// Matching reads in all, before paging.
    pub total_rows: u64,
}

/// Runs a VRM search, passing rows to `emit` in rank order as each matched
/// VRM's timeline is read.
pub fn vrm_search_stream(
    store: &dyn Store,
    q: &VrmQuery,
    emit: &mut dyn FnMut(VrmRow) -> ControlFlow<()>,
) -> Result<VrmTotals, QueryError> {
    if q.from > q.to {
        return Err(QueryError::Invalid(format!(
            "the window is inverted: from {} is after to {}",
            q.from, q.to
        )));
    }
    let mut ranked: Vec<(Vrm, MatchKind)> = candidates(store, q)?.into_iter().collect();
    ranked.sort_by(|a, b| (a.1.rank(), &a.0).cmp(&(b.1.rank(), &b.0)));
    let mut out = VrmTotals::default();
    let mut emitted = 0usize;
    let mut stopped = false;
    for (vrm, how) in ranked {
        let mut hit: Option<VrmHit> = None;
        store.vrm_timeline(&vrm, q.from, q.to, &mut |read| {
            let t = read.read.observed_at;
            let h = hit.get_or_insert_with(|| VrmHit {
                vrm: vrm.clone(),
                how: how.clone(),
                reads: 0,
                first_seen: t,
                last_seen: t,
            });
            h.reads += 1;
            h.last_seen = t;
            out.total_rows += 1;
            if (out.total_rows as usize) <= q.offset || stopped {
                // Before the page, or the receiver has gone.
            } else if emitted < q.limit {
                out.summary.add(&read);
                emitted += 1;
                let how = how.clone();
                stopped = emit(VrmRow { read, how }).is_break();
            } else {
                out.summary.truncated = true;
            }
            ControlFlow::Continue(())
        })?;
        out.vrms.extend(hit);
    }
    Ok(out)
}

/// Runs a VRM search and collects its rows.
pub fn vrm_search(store: &dyn Store, q: &VrmQuery) -> Result<VrmResult, QueryError> {
    let mut rows = Vec::new();
    let totals = vrm_search_stream(store, q, &mut |row| {
        rows.push(row);
        ControlFlow::Continue(())
    })?;
    Ok(VrmResult {
        rows,
        vrms: totals.vrms,
        summary: totals.summary,
        total_rows: totals.total_rows,
    })
}
