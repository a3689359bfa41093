//! Subject profiles: a vehicle's usual locations, usual times and regular
//! journeys over a period, and the reads that do not fit.
//!
//! A location is an H3 cell at the asked resolution; a day is a UK local
//! day; a trip is a run of reads no further apart than the trip gap; a
//! journey is a trip's locations in order, repeats collapsed. A location or
//! journey is usual when seen on at least `min_days` days. A read is an
//! outlier when its location is not usual (then its trip is on no usual
//! journey either: a usual journey's locations are each seen on as many
//! days); its score is one less the share of active days its location was
//! seen on. Everything is counted exactly; nothing is sampled.

use std::collections::{BTreeMap, BTreeSet};

use nadc_core::Timestamp;
use nadc_core::geo::GeoPoint;

/// A read of the vehicle: when and where.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sighting {
    /// Capture time.
    pub at: Timestamp,
    /// Where.
    pub place: GeoPoint,
}

/// How to profile.
#[derive(Clone, Copy, Debug)]
pub struct ProfileQuery {
    /// A location's H3 resolution.
    pub resolution: h3o::Resolution,
    /// Reads further apart start a new trip, ms.
    pub trip_gap_ms: i64,
    /// Days that make a location or journey usual.
    pub min_days: u32,
}

/// A location's counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    /// The cell.
    pub cell: u64,
    /// UK local days seen there.
    pub days: u32,
    /// Sightings there, by index.
    pub reads: Vec<usize>,
    /// By UK local hour of the day.
    pub by_hour: [u32; 24],
    /// Whether usual.
    pub usual: bool,
}

/// A journey's trips.
#[derive(Clone, Debug, PartialEq)]
pub struct Journey {
    /// Its locations in order.
    pub cells: Vec<u64>,
    /// UK local days made on.
    pub days: u32,
    /// Its trips: first and last sighting index, inclusive.
    pub trips: Vec<(usize, usize)>,
    /// The UK local hour each trip started.
    pub start_hours: Vec<u32>,
    /// Whether usual.
    pub usual: bool,
}

/// A read that does not fit.
#[derive(Clone, Debug, PartialEq)]
pub struct Outlier {
    /// The sighting.
    pub read: usize,
    /// One less the share of active days its location was seen on.
    pub score: f64,
    /// Days its location was seen on.
    pub location_days: u32,
    /// The share of all reads taken in its UK local hour.
    pub hour_share: f64,
}

/// A profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// UK local days with any read.
    pub active_days: u32,
    /// Locations, usual first, by days, reads, then cell.
    pub locations: Vec<Location>,
    /// Journeys of two or more locations, usual first, by days, trips, then
    /// cells.
    pub journeys: Vec<Journey>,
    /// Outliers, highest score first, then time.
    pub outliers: Vec<Outlier>,
    /// Every read by UK local hour of the day.
    pub by_hour: [u32; 24],
    /// Every read by UK local day of the week, Monday first.
    pub by_weekday: [u32; 7],
}

fn local_day(t: Timestamp) -> u32 {
    t.uk_local().day()
}

fn local_hour(t: Timestamp) -> u32 {
    t.uk_local().ms_of_day() / 3_600_000
}

/// Profiles `sightings` (in capture-time order).
pub fn profile(sightings: &[Sighting], q: &ProfileQuery) -> Profile {
    let cells: Vec<u64> = sightings
        .iter()
        .map(|s| s.place.cell_at(q.resolution))
        .collect();
    let mut by_hour = [0u32; 24];
    let mut by_weekday = [0u32; 7];
    let mut active = BTreeSet::new();
    let mut locations: BTreeMap<u64, (BTreeSet<u32>, Location)> = BTreeMap::new();
    for (i, s) in sightings.iter().enumerate() {
        let (day, hour) = (local_day(s.at), local_hour(s.at));
        active.insert(day);
        by_hour[hour as usize] += 1;
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
        by_weekday[(day as usize + 3) % 7] += 1;
        let (days, loc) = locations.entry(cells[i]).or_insert_with(|| {
            (
                BTreeSet::new(),
                Location {
                    cell: cells[i],
                    days: 0,
                    reads: Vec::new(),
                    by_hour: [0; 24],
                    usual: false,
                },
            )
        });
        days.insert(day);
        loc.reads.push(i);
        loc.by_hour[hour as usize] += 1;
    }
    let mut locations: Vec<Location> = locations
        .into_values()
        .map(|(days, mut loc)| {
            loc.days = days.len() as u32;
            loc.usual = loc.days >= q.min_days;
            loc
        })
        .collect();
    // Trips, and journeys by their locations in order.
    let mut trips: Vec<(usize, usize)> = Vec::new();
    for (i, s) in sightings.iter().enumerate() {
        match trips.last_mut() {
            Some((_, last)) if s.at.millis() - sightings[*last].at.millis() <= q.trip_gap_ms => {
                *last = i;
            }
            _ => trips.push((i, i)),
        }
    }
    let mut journeys: BTreeMap<Vec<u64>, (BTreeSet<u32>, Journey)> = BTreeMap::new();
    for (a, b) in &trips {
        let mut path: Vec<u64> = Vec::new();
        for cell in &cells[*a..=*b] {
            if path.last() != Some(cell) {
                path.push(*cell);
            }
        }
        if path.len() < 2 {
            continue;
        }
        let (days, j) = journeys.entry(path.clone()).or_insert_with(|| {
            (
                BTreeSet::new(),
                Journey {
                    cells: path,
                    days: 0,
                    trips: Vec::new(),
                    start_hours: Vec::new(),
                    usual: false,
                },
            )
        });
        days.insert(local_day(sightings[*a].at));
        j.trips.push((*a, *b));
        j.start_hours.push(local_hour(sightings[*a].at));
    }
    let mut journeys: Vec<Journey> = journeys
        .into_values()
        .map(|(days, mut j)| {
            j.days = days.len() as u32;
            j.usual = j.days >= q.min_days;
            j
        })
        .collect();
    let active_days = active.len() as u32;
    let location_days: BTreeMap<u64, (u32, bool)> = locations
        .iter()
        .map(|l| (l.cell, (l.days, l.usual)))
        .collect();
    let total = sightings.len().max(1) as f64;
    let mut outliers: Vec<Outlier> = (0..sightings.len())
        .filter_map(|i| {
            let (days, usual) = location_days[&cells[i]];
            (!usual).then(|| Outlier {
                read: i,
                score: 1.0 - f64::from(days) / f64::from(active_days.max(1)),
                location_days: days,
                hour_share: f64::from(by_hour[local_hour(sightings[i].at) as usize]) / total,
            })
        })
        .collect();
    outliers.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.read.cmp(&b.read)));
    locations.sort_by(|a, b| {
        (b.usual, b.days, b.reads.len(), a.cell).cmp(&(a.usual, a.days, a.reads.len(), b.cell))
    });
    journeys.sort_by(|a, b| {
        (b.usual, b.days, b.trips.len())
            .cmp(&(a.usual, a.days, a.trips.len()))
            .then_with(|| a.cells.cmp(&b.cells))
    });
    Profile {
        active_days,
        locations,
        journeys,
        outliers,
        by_hour,
        by_weekday,
    }
}
