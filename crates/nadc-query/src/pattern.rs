//! Crime pattern analysis: which vehicles were near at least K of a set of
//! incidents, each within ±T of the incident's time and R metres of its
//! place.
//!
//! Two passes over the geographic index, both the geographic search's
//! (each incident a circular area with its own window, combined with ANY):
//! the first tallies, for every vehicle read near any incident, the
//! incidents it was near, keeping no read; the second fetches the reads of
//! the vehicles chosen (near at least K, strongest first, up to a limit).
//! Nationally the tallies of every node are summed before the vehicles are
//! chosen, so a vehicle near one incident in one force and another in the
//! next is found; the second pass then runs on every node for the same
//! vehicles. Memory holds one day's candidates and one tally per vehicle,
//! never every read near every incident.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use nadc_core::{Circle, GeoPoint, StoredRead, Timestamp, Vrm};
use nadc_store::Store;

use crate::geo::{Area, AreaMatch, GeoQuery, geo_search_filtered};
use crate::{QueryError, ResultSummary};

/// An incident: when and where.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Incident {
    /// When it happened.
    pub at: Timestamp,
    /// Where.
    pub place: GeoPoint,
}

/// A crime pattern analysis.
#[derive(Clone, Debug)]
pub struct PatternQuery {
    /// The incidents (at least one).
    pub incidents: Vec<Incident>,
    /// Each incident's searched window, clipped to what the caller may
    /// see: (from, to), inclusive. Normally `at ± window`.
    pub windows: Vec<(Timestamp, Timestamp)>,
    /// How near a read must be to an incident's place, metres.
    pub radius_m: f64,
    /// Most candidate reads examined in one day before the analysis is
    /// refused as too broad.
    pub max_candidates: usize,
}

/// The incidents one vehicle was near, by index.
pub type Tally = BTreeMap<Vrm, BTreeSet<u32>>;

impl PatternQuery {
    fn geo(&self) -> Result<GeoQuery, QueryError> {
        if self.incidents.is_empty() || self.incidents.len() != self.windows.len() {
            return Err(QueryError::Invalid(
                "a crime pattern analysis needs at least one incident, each with its window".into(),
            ));
        }
        let areas = self
            .incidents
            .iter()
            .zip(&self.windows)
            .map(|(i, (from, to))| {
                Circle::new(i.place, self.radius_m)
                    .map(|c| Area::circle(c, *from, *to))
                    .map_err(|e| QueryError::Invalid(format!("radius: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GeoQuery {
            areas,
            matching: AreaMatch::Any,
            limit: 0,
            offset: 0,
            max_candidates: self.max_candidates,
        })
    }
}

/// The first pass: every vehicle read near any incident, with the
/// incidents it was near (and how many reads were examined).
pub fn tally(store: &dyn Store, q: &PatternQuery) -> Result<(Tally, u64), QueryError> {
    let geo = q.geo()?;
    let totals = geo_search_filtered(store, &geo, &|_| true, &mut |_| ControlFlow::Continue(()))?;
    let near = totals.total_rows;
    Ok((
        totals.vrms.into_iter().map(|s| (s.vrm, s.areas)).collect(),
        near,
    ))
}

/// The vehicles near at least `min_incidents` incidents, strongest first
/// (most incidents, then by VRM), at most `limit`; and how many qualified
/// in all.
pub fn choose(tally: &Tally, min_incidents: usize, limit: usize) -> (Vec<Vrm>, usize) {
    let mut chosen: Vec<(&Vrm, usize)> = tally
        .iter()
        .map(|(v, i)| (v, i.len()))
        .filter(|(_, n)| *n >= min_incidents)
        .collect();
    let qualified = chosen.len();
    chosen.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    (
        chosen
            .into_iter()
            .take(limit)
            .map(|(v, _)| v.clone())
            .collect(),
        qualified,
    )
}

/// A read near an incident, and the incidents it is near.
#[derive(Clone, Debug, PartialEq)]
pub struct NearRead {
    /// The read.
    pub read: StoredRead,
    /// Indexes of the incidents it is near.
    pub incidents: Vec<u32>,
}

/// The second pass: the reads of `vrms` near any incident, in capture-time
/// order, and their summary.
pub fn reads_near(
    store: &dyn Store,
    q: &PatternQuery,
    vrms: &BTreeSet<Vrm>,
) -> Result<(Vec<NearRead>, ResultSummary), QueryError> {
    let mut geo = q.geo()?;
    geo.limit = usize::MAX;
    let mut rows = Vec::new();
    let totals = geo_search_filtered(
        store,
        &geo,
        &|r: &StoredRead| vrms.contains(&r.read.vrm),
        &mut |row| {
            rows.push(NearRead {
                read: row.read,
                incidents: row.areas,
            });
            ControlFlow::Continue(())
        },
    )?;
    Ok((rows, totals.summary))
}

/// A vehicle near incidents, with the reads behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Vehicle {
    /// The VRM.
    pub vrm: Vrm,
    /// The incidents it was near, by index, in order.
    pub incidents: Vec<u32>,
    /// For each of those incidents, its read nearest in place there (index
    /// into the sightings), the distance in metres and the read's time
    /// less the incident's, in seconds.
    pub nearest: Vec<(usize, f64, f64)>,
    /// Its reads near any incident (indexes into the sightings).
    pub reads: Vec<usize>,
}

/// A read as the ranking sees it: whose, where and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Sighting {
    /// The VRM read.
    pub vrm: Vrm,
    /// Where.
    pub place: GeoPoint,
    /// When.
    pub at: Timestamp,
}

/// The vehicles among `sightings` near at least `min_incidents` of the
/// incidents (each read counted near an incident when within `radius_m`
/// of its place and inside its window), strongest first: most incidents,
/// then by VRM. What every node's reads, merged, are ranked by.
pub fn vehicles(q: &PatternQuery, sightings: &[Sighting], min_incidents: usize) -> Vec<Vehicle> {
    let mut by_vrm: BTreeMap<&Vrm, BTreeMap<u32, (usize, f64, f64)>> = BTreeMap::new();
    let mut reads: BTreeMap<&Vrm, Vec<usize>> = BTreeMap::new();
    for (k, s) in sightings.iter().enumerate() {
        let mut near_any = false;
        for (i, (incident, (from, to))) in q.incidents.iter().zip(&q.windows).enumerate() {
            if s.at < *from || s.at > *to {
                continue;
            }
            if !s.place.within_m(incident.place, q.radius_m) {
                continue;
            }
            let d = s.place.distance_m(incident.place);
            near_any = true;
            let dt = (s.at.millis() - incident.at.millis()) as f64 / 1000.0;
            let best = by_vrm
                .entry(&s.vrm)
                .or_default()
                .entry(i as u32)
                .or_insert((k, d, dt));
            if d < best.1 {
                *best = (k, d, dt);
            }
        }
        if near_any {
            reads.entry(&s.vrm).or_default().push(k);
        }
    }
    let mut out: Vec<Vehicle> = by_vrm
        .into_iter()
        .filter(|(_, near)| near.len() >= min_incidents)
        .map(|(vrm, near)| Vehicle {
            vrm: vrm.clone(),
            incidents: near.keys().copied().collect(),
            nearest: near.values().copied().collect(),
            reads: reads.remove(vrm).unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.incidents
            .len()
            .cmp(&a.incidents.len())
            .then_with(|| a.vrm.cmp(&b.vrm))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + min * 60_000)
    }

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn q() -> PatternQuery {
        let incidents = vec![
            Incident {
                at: at(0),
                place: p(51.45, -2.58),
            },
            Incident {
                at: at(600),
                place: p(51.50, -2.58),
            },
        ];
        let windows = incidents
            .iter()
            .map(|i| (i.at.plus_millis(-1_800_000), i.at.plus_millis(1_800_000)))
            .collect();
        PatternQuery {
            incidents,
            windows,
            radius_m: 500.0,
            max_candidates: 1000,
        }
    }

    fn s(vrm: &str, place: GeoPoint, min: i64) -> Sighting {
        Sighting {
            vrm: Vrm::normalise(vrm).unwrap(),
            place,
            at: at(min),
        }
    }

    #[test]
    fn a_vehicle_near_both_incidents_ranks_first_and_one_near_once_is_left_out() {
        let q = q();
        let sightings = vec![
            s("AB12CDE", p(51.451, -2.58), 10),   // near 0 (111 m, +10 min)
            s("XY99ZZZ", p(51.4505, -2.58), 5),   // near 0
            s("AB12CDE", p(51.50, -2.5805), 620), // near 1
            s("AB12CDE", p(51.46, -2.58), 5),     // 1.1 km: near none
            s("XY99ZZZ", p(51.50, -2.58), 700),   // 100 min after: outside
        ];
        let v = vehicles(&q, &sightings, 2);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].vrm.as_str(), "AB12CDE");
        assert_eq!(v[0].incidents, vec![0, 1]);
        assert_eq!(v[0].reads, vec![0, 2]);
        assert_eq!(v[0].nearest[0].0, 0);
        assert!((v[0].nearest[0].2 - 600.0).abs() < 1e-9);
        let v1 = vehicles(&q, &sightings, 1);
        assert_eq!(
            v1.iter().map(|v| v.vrm.as_str()).collect::<Vec<_>>(),
            ["AB12CDE", "XY99ZZZ"]
        );
    }

    #[test]
    fn choose_ranks_by_incidents_then_vrm_and_counts_all_that_qualify() {
        let mut t = Tally::new();
        for (v, n) in [
            ("AA11AAA", 2),
            ("BB11BBB", 3),
            ("CC11CCC", 2),
            ("DD11DDD", 1),
        ] {
            t.insert(Vrm::normalise(v).unwrap(), (0..n).collect());
        }
        let (chosen, qualified) = choose(&t, 2, 2);
        assert_eq!(qualified, 3);
        assert_eq!(
            chosen.iter().map(Vrm::as_str).collect::<Vec<_>>(),
            ["BB11BBB", "AA11AAA"]
        );
    }
}
