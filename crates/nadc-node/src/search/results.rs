//! The Analysis service's results analysis and transparency report
//! (`crate::reports` reads the records). Results are a force's own, planned
//! and audited as an analysis (purpose, case); the transparency report is
//! public: any authenticated caller, small counts suppressed, and every
//! request audited. Nationally every node's aggregates are summed here
//! before anything is suppressed (a peer gives its raw aggregates only to
//! a node).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use nadc_core::audit::Outcome;
use nadc_core::{Principal, Timestamp};
use nadc_proto::pb;
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use super::national::{Concluded, Gathered, PeersPart, alone, gather};
use super::plan::time_json;
use crate::auth::caller;
use crate::error::ServiceError;
use crate::governance::{Actor, Audited};
use crate::reports::{Tallies, published, tally};

/// Longest results period, days.
const MAX_DAYS: u32 = 400;

/// Longest transparency report, months.
const MAX_MONTHS: usize = 36;

/// The default and least suppression threshold.
const DEFAULT_MIN_COUNT: u32 = 10;
const LEAST_MIN_COUNT: u32 = 5;

/// What the transparency report says of itself.
const NOTES: [&str; 5] = [
    "Aggregates only: no vehicle registration mark, read or person is named.",
    "Counts from 1 to the minimum less one are suppressed (shown as suppressed, value 0), so \
     that no small group can be singled out.",
    "Searches are counted once, at the node where they were asked; an analysis made in two \
     passes counts once.",
    "Reads held are those held when the report was made, by the month they were captured; \
     reads already deleted by retention are counted in the month they were deleted.",
    "Hits are live hits on the force's hotlists, by the month the read was captured; \
     outcomes are those operators recorded.",
];

/// The months from `from` to `to` ("YYYY-MM"), checked.
fn months(from: &str, to: &str) -> Result<Vec<String>, ServiceError> {
    let parse = |s: &str, what: &str| -> Result<(i32, u32), ServiceError> {
        let bad = || ServiceError::invalid(format!("{what} {s:?}: a month as YYYY-MM"));
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || s.trim().len() != 7 {
            return Err(bad());
        }
        Ok((y, m))
    };
    let (mut y, mut m) = parse(from, "from_month")?;
    let last = parse(to, "to_month")?;
    if (y, m) > last {
        return Err(ServiceError::invalid(format!(
            "from_month {from} is after to_month {to}"
        )));
    }
    let mut out = Vec::new();
    while (y, m) <= last {
        out.push(format!("{y:04}-{m:02}"));
        if out.len() > MAX_MONTHS {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_MONTHS} months a report"
            )));
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    Ok(out)
}

/// The first and last UTC day of a run of months.
fn days_of(months: &[String]) -> Result<(u32, u32), ServiceError> {
    let first = Timestamp::parse_rfc3339(&format!("{}-01T00:00:00Z", months[0]))
        .map_err(|e| ServiceError::invalid(e.to_string()))?;
    let last = months.last().expect("at least one month");
    let (y, m): (i32, u32) = (
        last[..4].parse().unwrap_or(1970),
        last[5..].parse().unwrap_or(1),
    );
    let next = if m == 12 {
        format!("{:04}-01-01T00:00:00Z", y + 1)
    } else {
        format!("{y:04}-{:02}-01T00:00:00Z", m + 1)
    };
    let next = Timestamp::parse_rfc3339(&next).map_err(|e| ServiceError::invalid(e.to_string()))?;
    Ok((first.day(), next.day() - 1))
}

impl SearchService {
    /// Answers results analysis: this node's aggregates for the caller's
    /// force and, nationally, every peer's, summed.
    pub(super) async fn results_of(
        &self,
        req: Request<pb::ResultsRequest>,
    ) -> Result<pb::ResultsResponse, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let started = Instant::now();
        let (mut answer, actor, case) = self.results_here(&req, relay.as_ref()).await?;
        answer.stale = self.stale_here();
        let Some((federation, user)) = national else {
            let (mut parts, gathered) = alone(answer);
            let answer = parts.pop().unwrap_or_default();
            return Ok(finish(answer, gathered, &self.node, started));
        };
        // Each node's searches and hits are its own audit's and alert
        // log's: a replica's would not be the peer's.
        let answers = self
            .ask_peers_themselves(
                &federation,
                &federation.peers,
                &user,
                &q,
                |mut c, r| async move { c.results(r).await },
            )
            .await;
        let (parts, gathered) = gather(&self.node, answer, answers, |a| {
            (a.lists.len() + a.searches.len()) as u64
        });
        self.audit_peers_part(
            &actor,
            case,
            q.access.as_ref(),
            "search.results.national",
            json!({"national": true, "from": time_json(q.from.as_ref()),
                "to": time_json(q.to.as_ref()), "list": q.list, "by_month": q.by_month}),
            PeersPart {
                returned: Vec::new(),
                reads: Vec::new(),
            },
        )
        .await?;
        Ok(finish(merge_results(parts), gathered, &self.node, started))
    }

    /// This node's results for the caller of `req` or the user a peer
    /// relays, planned and audited as an analysis.
    async fn results_here(
        &self,
        req: &Request<pb::ResultsRequest>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<(pb::ResultsResponse, Actor, Option<crate::cases::CaseId>), Status> {
        let search = "results";
        let q = req.get_ref();
        let (mut plan, checked) = self
            .plan_relayed(req, search, q.access.as_ref(), relay)
            .await?;
        plan.query = json!({"from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
            "list": q.list, "by_month": q.by_month});
        let planned = checked.and_then(|()| {
            let from = super::required_time(q.from.as_ref(), "from")?;
            let to = super::required_time(q.to.as_ref(), "to")?;
            if from > to {
                return Err(ServiceError::invalid(format!(
                    "the period is inverted (from {from} is after to {to})"
                )));
            }
            let days = to.day() - from.day() + 1;
            if days > MAX_DAYS {
                return Err(ServiceError::invalid(format!(
                    "the period is {days} days; at most {MAX_DAYS}"
                )));
            }
            let force = plan
                .actor
                .force
                .clone()
                .ok_or_else(|| ServiceError::denied("results analysis needs a force user"))?;
            Ok((from.day(), to.day(), force))
        });
        let (from_day, to_day, force) = match planned {
            Ok(p) => p,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        // The force's lists held here: each one reported, hit or not.
        let lists: BTreeSet<String> = self
            .hotlists
            .lists()
            .iter()
            .filter(|(l, _)| l.id.owner == force && (q.list.is_empty() || l.id.name == q.list))
            .map(|(l, _)| l.id.name.clone())
            .collect();
        let (actor, case) = (plan.actor.clone(), plan.case.clone());
        let (list, by_month) = (q.list.clone(), q.by_month);
        let purposes = known_purposes(&self.governance);
        let answer = self
            .on_worker(plan, search, move |store, node, governance, plan| {
                let result = tally(store, from_day, to_day, &purposes);
                let outcome = match &result {
                    Ok(_) => Outcome::Ok,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                governance.record_search_blocking(
                    plan.closing(search, Vec::new(), outcome),
                    plan.case.as_ref(),
                    &[],
                )?;
                let t = result.map_err(|e| Status::from(ServiceError::from(e)))?;
                let mut answer = results_for(&t, force.as_str(), &lists, &list, by_month);
                answer.node = node.to_string();
                Ok::<_, Status>(answer)
            })
            .await?;
        Ok((answer, actor, case))
    }

    /// Answers the transparency report: raw aggregates to a peer node, else
    /// every node's summed (nationally) with small counts suppressed.
    pub(super) async fn transparency_of(
        &self,
        req: Request<pb::TransparencyRequest>,
    ) -> Result<pb::TransparencyResponse, Status> {
        let q = req.get_ref().clone();
        let principal = caller(&req)?.principal;
        let actor = Actor::of(&principal);
        let raw = matches!(principal, Principal::Node { .. });
        let what = Audited {
            query: json!({"from_month": q.from_month, "to_month": q.to_month,
                "min_count": q.min_count, "raw": raw}),
            ..Default::default()
        };
        let g = self.governance.clone();
        let checked = months(&q.from_month, &q.to_month).and_then(|m| {
            let min = match q.min_count {
                0 => DEFAULT_MIN_COUNT,
                n if n < LEAST_MIN_COUNT => {
                    return Err(ServiceError::invalid(format!(
                        "min_count {n}: at least {LEAST_MIN_COUNT}"
                    )));
                }
                n => n,
            };
            // Closed months only: a month still counting would show each
            // new event between two reports.
            let current = crate::reports::month_of(self.clock.now());
            if !raw && m.last().is_some_and(|last| *last >= current) {
                return Err(ServiceError::invalid(format!(
                    "to_month {}: only closed months are reported (before {current})",
                    q.to_month
                )));
            }
            let days = days_of(&m)?;
            Ok((m, min, days))
        });
        let (months, min, (from_day, to_day)) = match checked {
            Ok(c) => c,
            Err(e) => return Err(g.refuse(&actor, "report.transparency", &what, e).await),
        };
        // Public aggregates: always the federation's whole (one node's part
        // against the whole would give the others' small counts), without
        // a national search role (a peer gives its part only to a node).
        let national = self
            .federation
            .clone()
            .filter(|f| !raw && !f.peers.is_empty())
            .map(|f| (f, principal.clone()));
        let started = Instant::now();
        let worker = match self.workers.acquire(&format!("-/{}", actor.user)).await {
            Ok(w) => w,
            Err(status) => {
                return Err(g.refuse(&actor, "report.transparency", &what, status).await);
            }
        };
        let store = self.store.clone();
        let purposes = known_purposes(&self.governance);
        let here = tokio::task::spawn_blocking(move || {
            let _worker = worker;
            let t = tally(store.as_ref(), from_day, to_day, &purposes)?;
            let holds = crate::reports::holds_in_force(store.as_ref())?;
            Ok::<_, nadc_store::StoreError>(raw_report(&t, &holds))
        })
        .await
        .map_err(|e| Status::from(ServiceError::internal(format!("report task failed: {e}"))))?
        .map_err(|e| Status::from(ServiceError::from(e)));
        let here = match here {
            Ok(h) => h,
            Err(status) => {
                let entry = g.entry(
                    &actor,
                    "report.transparency",
                    &what,
                    Outcome::Failed(status.message().to_string()),
                );
                g.record(entry).await?;
                return Err(status);
            }
        };
        let mut here = here;
        here.stale = self.stale_here();
        let (parts, gathered) = match &national {
            Some((federation, user)) => {
                // Each node's own audit: never its replica's.
                let answers = self
                    .ask_peers_themselves(
                        federation,
                        &federation.peers,
                        user,
                        &q,
                        |mut c, r| async move { c.transparency(r).await },
                    )
                    .await;
                gather(&self.node, here, answers, |a| a.rows.len() as u64)
            }
            None => alone(here),
        };
        // A part missing would publish the rest, whose difference from a
        // whole report gives that node's small counts: nothing is published.
        if let Some(o) = gathered.nodes.iter().find(|o| !o.ok) {
            let e = ServiceError::Governed(Status::unavailable(format!(
                "node {} did not answer ({}): the report is published whole or not at all",
                o.node, o.error
            )));
            return Err(g.refuse(&actor, "report.transparency", &what, e).await);
        }
        g.record(g.entry(&actor, "report.transparency", &what, Outcome::Ok))
            .await?;
        let mut answer = merge_report(parts, &months);
        if !raw {
            suppress(&mut answer, u64::from(min));
            answer.notes = NOTES.iter().map(|n| n.to_string()).collect();
        }
        answer.min_count = min;
        answer.conclude(gathered, &self.node, started);
        Ok(answer)
    }
}

/// The purposes this node knows: searches under any other text count as
/// "other".
fn known_purposes(g: &crate::governance::Governance) -> Vec<String> {
    g.policy
        .purposes
        .iter()
        .chain(&g.policy.extended_purposes)
        .cloned()
        .collect()
}

/// A results answer completed: hit rates, nodes, timing.
fn finish(
    mut answer: pb::ResultsResponse,
    gathered: Gathered,
    node: &str,
    started: Instant,
) -> pb::ResultsResponse {
    for l in &mut answer.lists {
        l.hits_per_million = if l.reads_checked == 0 {
            0.0
        } else {
            l.hits as f64 * 1e6 / l.reads_checked as f64
        };
    }
    answer.conclude(gathered, node, started);
    answer
}

/// The results of `force` from a node's tallies: every list of `lists`
/// (the force's, held here), per month or over the whole period.
fn results_for(
    t: &Tallies,
    force: &str,
    lists: &BTreeSet<String>,
    only: &str,
    by_month: bool,
) -> pb::ResultsResponse {
    let key = |month: &str| {
        if by_month {
            month.to_string()
        } else {
            String::new()
        }
    };
    let mut rows: BTreeMap<(String, String), pb::ListResult> = BTreeMap::new();
    // Every month with reads, for every list held here.
    for name in lists {
        for (month, n) in &t.reads_all {
            let r = rows
                .entry((name.clone(), key(month)))
                .or_insert_with(|| pb::ListResult {
                    list: name.clone(),
                    month: key(month),
                    ..Default::default()
                });
            r.reads_checked += n;
        }
    }
    for ((owner, name, month), h) in &t.hits {
        if owner != force || !(only.is_empty() || only == name) {
            continue;
        }
        let r = rows
            .entry((name.clone(), key(month)))
            .or_insert_with(|| pb::ListResult {
                list: name.clone(),
                month: key(month),
                ..Default::default()
            });
        r.hits += h.hits;
        r.confirmed += h.confirmed;
        r.rejected += h.rejected;
        r.unverified += h.hits - h.confirmed - h.rejected;
        r.stopped += h.outcomes[0];
        r.arrested += h.outcomes[1];
        r.no_action += h.outcomes[2];
        r.not_located += h.outcomes[3];
    }
    let mut searches: BTreeMap<(String, String, String), pb::SearchTally> = BTreeMap::new();
    for ((f, purpose, case, month), c) in &t.searches {
        if f != force {
            continue;
        }
        let s = searches
            .entry((case.clone(), purpose.clone(), key(month)))
            .or_insert_with(|| pb::SearchTally {
                case_ref: case.clone(),
                purpose: purpose.clone(),
                month: key(month),
                ..Default::default()
            });
        s.searches += c.searches;
        s.refused += c.refused;
        s.rows += c.rows;
    }
    pb::ResultsResponse {
        force: force.to_string(),
        lists: rows.into_values().collect(),
        searches: searches.into_values().collect(),
        reads: t
            .reads
            .iter()
            .filter(|((f, _), _)| f == force)
            .map(|(_, n)| n)
            .sum(),
        ..Default::default()
    }
}

/// Every node's results as one: rows with the same key summed.
fn merge_results(parts: Vec<pb::ResultsResponse>) -> pb::ResultsResponse {
    let mut lists: BTreeMap<(String, String), pb::ListResult> = BTreeMap::new();
    let mut searches: BTreeMap<(String, String, String), pb::SearchTally> = BTreeMap::new();
    let mut out = pb::ResultsResponse::default();
    for p in parts {
        if out.force.is_empty() {
            out.force = p.force.clone();
        }
        out.reads += p.reads;
        for l in p.lists {
            let r = lists
                .entry((l.list.clone(), l.month.clone()))
                .or_insert_with(|| pb::ListResult {
                    list: l.list.clone(),
                    month: l.month.clone(),
                    ..Default::default()
                });
            r.reads_checked += l.reads_checked;
            r.hits += l.hits;
            r.confirmed += l.confirmed;
            r.rejected += l.rejected;
            r.unverified += l.unverified;
            r.stopped += l.stopped;
            r.arrested += l.arrested;
            r.no_action += l.no_action;
            r.not_located += l.not_located;
        }
        for s in p.searches {
            let r = searches
                .entry((s.case_ref.clone(), s.purpose.clone(), s.month.clone()))
                .or_insert_with(|| pb::SearchTally {
                    case_ref: s.case_ref.clone(),
                    purpose: s.purpose.clone(),
                    month: s.month.clone(),
                    ..Default::default()
                });
            r.searches += s.searches;
            r.refused += s.refused;
            r.rows += s.rows;
        }
    }
    out.lists = lists.into_values().collect();
    out.searches = searches.into_values().collect();
    out
}

fn count(v: u64) -> Option<pb::PublishedCount> {
    Some(pb::PublishedCount {
        value: v,
        suppressed: false,
    })
}

fn value(c: &Option<pb::PublishedCount>) -> u64 {
    c.as_ref().map_or(0, |c| c.value)
}

/// A node's report, unsuppressed: a row per force and month with anything
/// to say.
fn raw_report(t: &Tallies, holds: &BTreeMap<String, (u64, u64)>) -> pb::TransparencyResponse {
    #[derive(Default)]
    struct Row {
        searches: BTreeMap<String, u64>,
        reads: u64,
        hits: crate::reports::HitTally,
        deleted: u64,
        placed: u64,
        released: u64,
    }
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for ((f, purpose, _, month), c) in t.searches.iter().filter(|(_, c)| c.searches > 0) {
        *rows
            .entry((f.clone(), month.clone()))
            .or_default()
            .searches
            .entry(purpose.clone())
            .or_default() += c.searches;
    }
    for (k, n) in &t.reads {
        rows.entry(k.clone()).or_default().reads += n;
    }
    for ((owner, _, month), h) in &t.hits {
        let r = &mut rows.entry((owner.clone(), month.clone())).or_default().hits;
        r.hits += h.hits;
        r.confirmed += h.confirmed;
        r.rejected += h.rejected;
        for i in 0..4 {
            r.outcomes[i] += h.outcomes[i];
        }
    }
    for (k, n) in &t.deleted {
        rows.entry(k.clone()).or_default().deleted += n;
    }
    for (k, n) in &t.holds_placed {
        rows.entry(k.clone()).or_default().placed += n;
    }
    for (k, n) in &t.holds_released {
        rows.entry(k.clone()).or_default().released += n;
    }
    pb::TransparencyResponse {
        rows: rows
            .into_iter()
            .filter(|((f, _), _)| !f.is_empty())
            .map(|((force, month), r)| pb::TransparencyRow {
                force,
                month,
                searches: r
                    .searches
                    .into_iter()
                    .map(|(purpose, n)| pb::PurposeCount {
                        purpose,
                        searches: count(n),
                    })
                    .collect(),
                reads_held: count(r.reads),
                hits: count(r.hits.hits),
                confirmed: count(r.hits.confirmed),
                rejected: count(r.hits.rejected),
                stopped: count(r.hits.outcomes[0]),
                arrested: count(r.hits.outcomes[1]),
                no_action: count(r.hits.outcomes[2]),
                not_located: count(r.hits.outcomes[3]),
                deleted_by_retention: count(r.deleted),
                holds_placed: count(r.placed),
                holds_released: count(r.released),
            })
            .collect(),
        holds: holds
            .iter()
            .map(|(force, (cases, reads))| pb::HoldsInForce {
                force: force.clone(),
                cases: count(*cases),
                reads: count(*reads),
            })
            .collect(),
        ..Default::default()
    }
}

/// Every node's raw report as one, for `months` only: values with the same
/// key summed.
fn merge_report(
    parts: Vec<pb::TransparencyResponse>,
    months: &[String],
) -> pb::TransparencyResponse {
    let wanted: BTreeSet<&str> = months.iter().map(String::as_str).collect();
    let mut rows: BTreeMap<(String, String), pb::TransparencyRow> = BTreeMap::new();
    let mut holds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let add = |a: &mut Option<pb::PublishedCount>, b: &Option<pb::PublishedCount>| {
        *a = count(value(a) + value(b));
    };
    for p in parts {
        for r in p.rows {
            if !wanted.contains(r.month.as_str()) {
                continue;
            }
            let o = rows
                .entry((r.force.clone(), r.month.clone()))
                .or_insert_with(|| pb::TransparencyRow {
                    force: r.force.clone(),
                    month: r.month.clone(),
                    ..Default::default()
                });
            let mut purposes: BTreeMap<String, u64> = o
                .searches
                .iter()
                .map(|p| (p.purpose.clone(), value(&p.searches)))
                .collect();
            for s in &r.searches {
                *purposes.entry(s.purpose.clone()).or_default() += value(&s.searches);
            }
            o.searches = purposes
                .into_iter()
                .map(|(purpose, n)| pb::PurposeCount {
                    purpose,
                    searches: count(n),
                })
                .collect();
            add(&mut o.reads_held, &r.reads_held);
            add(&mut o.hits, &r.hits);
            add(&mut o.confirmed, &r.confirmed);
            add(&mut o.rejected, &r.rejected);
            add(&mut o.stopped, &r.stopped);
            add(&mut o.arrested, &r.arrested);
            add(&mut o.no_action, &r.no_action);
            add(&mut o.not_located, &r.not_located);
            add(&mut o.deleted_by_retention, &r.deleted_by_retention);
            add(&mut o.holds_placed, &r.holds_placed);
            add(&mut o.holds_released, &r.holds_released);
        }
        for h in p.holds {
            let e = holds.entry(h.force.clone()).or_default();
            e.0 += value(&h.cases);
            e.1 += value(&h.reads);
        }
    }
    pb::TransparencyResponse {
        rows: rows.into_values().collect(),
        holds: holds
            .into_iter()
            .map(|(force, (cases, reads))| pb::HoldsInForce {
                force,
                cases: count(cases),
                reads: count(reads),
            })
            .collect(),
        ..Default::default()
    }
}

/// Suppresses every count from 1 to `min - 1`.
fn suppress(r: &mut pb::TransparencyResponse, min: u64) {
    let s = |c: &mut Option<pb::PublishedCount>| {
        let (value, suppressed) = published(value(c), min);
        *c = Some(pb::PublishedCount { value, suppressed });
    };
    for row in &mut r.rows {
        for p in &mut row.searches {
            s(&mut p.searches);
        }
        for c in [
            &mut row.reads_held,
            &mut row.hits,
            &mut row.confirmed,
            &mut row.rejected,
            &mut row.stopped,
            &mut row.arrested,
            &mut row.no_action,
            &mut row.not_located,
            &mut row.deleted_by_retention,
            &mut row.holds_placed,
            &mut row.holds_released,
        ] {
            s(c);
        }
    }
    for h in &mut r.holds {
        s(&mut h.cases);
        s(&mut h.reads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::month_of_day;

    #[test]
    fn months_run_across_a_year_and_bad_ones_are_named() {
        assert_eq!(
            months("2025-11", "2026-02").unwrap(),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
        for (a, b, words) in [
            ("2026-13", "2026-12", "from_month"),
            ("2026-1", "2026-12", "from_month"),
            ("2026-05", "2026-04", "after"),
            ("2020-01", "2026-01", "at most 36"),
        ] {
            let e = months(a, b).unwrap_err().to_string();
            assert!(e.contains(words), "{a} {b}: {e}");
        }
        let (first, last) = days_of(&months("2026-02", "2026-02").unwrap()).unwrap();
        assert_eq!(month_of_day(first), "2026-02");
        assert_eq!(month_of_day(last), "2026-02");
        assert_eq!(month_of_day(last + 1), "2026-03");
        assert_eq!(last - first + 1, 28);
    }
}
