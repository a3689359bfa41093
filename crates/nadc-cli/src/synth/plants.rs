//! The analysis plants (issue 20): patterns the analyses must find, planted
//! deterministically in the synthetic traffic and named in its ground
//! truth.
//!
//! - **A commuter** (vehicle 3): on weekdays (UTC) leaves home at about
//!   07:30 for a work town and comes home at 17:30, past the same cameras
//!   each time; on one weekday (the
//!   middle one) it goes to another town instead: the odd trip a subject
//!   profile flags. Its first commute gives two journey claims: one it made
//!   (possible) and one to the far side of the country twenty minutes
//!   after (not possible).
//! - **Associates** (vehicles 5 and 6) travel only with vehicle 4, 20 to
//!   100 seconds behind it, on every trip: a co-travel group for the
//!   associate network.
//! - **An offender** (vehicle 7) travels every day; on each trip it passes
//!   a camera (always read there) where an incident happens three minutes
//!   later, 150 m away. Each such incident has a decoy incident the same
//!   day elsewhere: the offender is near half the incidents, other
//!   vehicles by chance only.
//! - **A silent camera**: the commuter's home town's first camera reads
//!   nothing on the last day (with two days or more).

use std::sync::Mutex;

use nadc_core::ForceId;
use rand::Rng;

use super::{Generator, offset, rng_for};

/// The plants' vehicles.
pub(super) const COMMUTER: usize = 3;
pub(super) const HUB: usize = 4;
pub(super) const ASSOCIATES: [usize; 2] = [5, 6];
pub(super) const OFFENDER: usize = 7;

/// Vehicles needed before the plants are made (the clone's far vehicle is
/// the last).
pub(super) const MIN_VEHICLES: usize = 10;

const DAY_MS: i64 = nadc_core::time::MS_PER_DAY;
const H: i64 = 3_600_000;

/// The planted commuter.
#[derive(Clone, Debug)]
pub struct Commuter {
    /// Its plate.
    pub plate: String,
    /// Home town.
    pub home: &'static str,
    /// Work town.
    pub work: &'static str,
    /// The day (from 0) of the odd trip.
    pub odd_day: Option<u32>,
    /// Where it went instead of work that day.
    pub odd_town: &'static str,
}

/// An incident planted in the traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Whether the offender was planted near it.
    pub offender: bool,
}

/// A journey claim: where and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// What it is.
    pub label: String,
}

/// What the plants left during a run: incidents and the journey claims.
#[derive(Debug, Default)]
pub struct Planted {
    /// The incidents, in the order planted.
    pub incidents: Vec<Incident>,
    /// The commuter's first commute: its first and last camera passed.
    pub commute: Option<(Claim, Claim)>,
}

/// The plants' fixed facts (known before the run).
#[derive(Clone, Debug, Default)]
pub struct Plants {
    /// The commuter.
    pub commuter: Option<Commuter>,
    /// The hub and its associates' plates.
    pub associates: Option<(String, Vec<String>)>,
    /// The offender's plate.
    pub offender: Option<String>,
    /// The silent camera (force, id) and the day (from 0) it is silent.
    pub silent: Option<(ForceId, String, u32)>,
}

/// The UTC weekday (0 Monday) of a day's start.
fn weekday(day_ms: i64) -> u32 {
    ((day_ms.div_euclid(DAY_MS) + 3).rem_euclid(7)) as u32
}

impl Generator {
    /// Whether the plants are made in this world.
    pub(super) fn planting(&self) -> bool {
        self.cars.len() >= MIN_VEHICLES
    }

    /// The commuter's work town and the odd day's town.
    pub(super) fn commute_towns(&self) -> (usize, usize) {
        let w = &self.world;
        let home = usize::from(self.cars[COMMUTER].home);
        let n = w.towns.len();
        let work = w.regional[home]
            .first()
            .copied()
            .or_else(|| w.adj[home].first().map(|(t, _)| *t))
            .unwrap_or((home + 1) % n);
        let odd = w.regional[home]
            .iter()
            .copied()
            .find(|t| *t != work)
            .unwrap_or((home + n / 3) % n);
        (work, odd)
    }

    /// The odd day: the middle weekday of the run, if any.
    pub(super) fn odd_day(&self) -> Option<u32> {
        let start = self.cfg.day_start.millis();
        let weekdays: Vec<u32> = (0..self.cfg.days.max(1))
            .filter(|d| weekday(start + i64::from(*d) * DAY_MS) < 5)
            .collect();
        weekdays.get(weekdays.len() / 2).copied()
    }

    /// The plants' facts.
    pub fn plants(&self) -> Plants {
        if !self.planting() {
            return Plants::default();
        }
        let (work, odd) = self.commute_towns();
        let town = |t: usize| self.world.towns[t].name;
        let home = usize::from(self.cars[COMMUTER].home);
        Plants {
            commuter: Some(Commuter {
                plate: self.cars[COMMUTER].plate.clone(),
                home: town(home),
                work: town(work),
                odd_day: self.odd_day(),
                odd_town: town(odd),
            }),
            associates: Some((
                self.cars[HUB].plate.clone(),
                ASSOCIATES
                    .iter()
                    .map(|a| self.cars[*a].plate.clone())
                    .collect(),
            )),
            offender: Some(self.cars[OFFENDER].plate.clone()),
            silent: self.silent_site().map(|(site, day)| {
                let s = &self.world.sites[site];
                (s.force.clone(), s.id.clone(), day)
            }),
        }
    }

    /// The silent camera's site and day.
    pub(super) fn silent_site(&self) -> Option<(usize, u32)> {
        if !self.planting() || self.cfg.days < 2 {
            return None;
        }
        let home = usize::from(self.cars[COMMUTER].home);
        let site = *self.world.town_cameras[home].first()?;
        Some((site, self.cfg.days - 1))
    }

    /// A planted vehicle's day: `Some(plan)` for a plant (`plan` as
    /// `plan_day` gives it), `None` for any other vehicle.
    pub(super) fn planted_day(&self, v: usize, day: u32) -> Option<Option<(i64, u32)>> {
        if !self.planting() {
            return None;
        }
        let day_ms = self.cfg.day_start.millis() + i64::from(day) * DAY_MS;
        let mut rng = rng_for(self.cfg.seed, &[v as u64, u64::from(day), 7]);
        match v {
            COMMUTER if weekday(day_ms) < 5 => {
                Some(Some((15 * H / 2 + rng.random_range(0..10 * 60_000), 2)))
            }
            COMMUTER => Some(None),
            a if ASSOCIATES.contains(&a) => Some(None),
            OFFENDER => Some(Some((9 * H + rng.random_range(0..2 * H), 2))),
            _ => None,
        }
    }

    /// Where a planted vehicle goes on a trip from `here` (`None`: not a
    /// plant with a fixed destination).
    pub(super) fn planted_destination(&self, v: usize, day: u32, trip: u32) -> Option<usize> {
        if !self.planting() || v != COMMUTER {
            return None;
        }
        let home = usize::from(self.cars[COMMUTER].home);
        let (work, odd) = self.commute_towns();
        Some(match trip {
            0 if self.odd_day() == Some(day) => odd,
            0 => work,
            _ => home,
        })
    }

    /// The generator a planted vehicle's trip from `here` to `dest` picks
    /// its cameras with (`None`: the trip's own): the commuter passes the
    /// same cameras on every journey between the same two towns, so its
    /// pattern is regular.
    pub(super) fn planted_route_rng(
        &self,
        v: usize,
        here: usize,
        dest: usize,
    ) -> Option<rand_chacha::ChaCha8Rng> {
        (self.planting() && v == COMMUTER)
            .then(|| rng_for(self.cfg.seed, &[v as u64, here as u64, dest as u64, 8]))
    }

    /// When a planted vehicle leaves on its next trip (`None`: as any
    /// vehicle does).
    pub(super) fn planted_next_departure(&self, v: usize, at_ms: i64) -> Option<i64> {
        (self.planting() && v == COMMUTER).then(|| at_ms - at_ms.rem_euclid(DAY_MS) + 35 * H / 2)
    }

    /// Whether a read at `site` at `at_ms` is dropped (the silent camera).
    pub(super) fn silenced(&self, site: usize, at_ms: i64) -> bool {
        self.silent_site().is_some_and(|(s, day)| {
            s == site && (at_ms - self.cfg.day_start.millis()).div_euclid(DAY_MS) == i64::from(day)
        })
    }

    /// Records what a planted vehicle's trip plants: the offender's
    /// incident (and its decoy), the commuter's first commute. `passes`
    /// are the cameras passed and when (ms).
    pub(super) fn plant_trip(
        &self,
        planted: &Mutex<Planted>,
        v: usize,
        day: u32,
        trip: u32,
        passes: &[(usize, i64)],
    ) -> Option<(usize, i64)> {
        if !self.planting() || passes.is_empty() {
            return None;
        }
        let w = &self.world;
        let mut p = planted.lock().unwrap_or_else(|e| e.into_inner());
        match v {
            OFFENDER => {
                let mut rng = rng_for(
                    self.cfg.seed,
                    &[v as u64, u64::from(day), 100 + u64::from(trip)],
                );
                let (site, at) = passes[passes.len() / 2];
                let s = w.sites[site].point;
                let (lat, lon) = offset(s.lat(), s.lon(), 150.0, 0.0);
                p.incidents.push(Incident {
                    at_ms: at + 3 * 60_000,
                    lat,
                    lon,
                    offender: true,
                });
                // A decoy: another camera's place, another time that day.
                let other = rng.random_range(0..w.sites.len());
                let o = w.sites[other].point;
                let day_start = at - at.rem_euclid(DAY_MS);
                p.incidents.push(Incident {
                    at_ms: day_start + rng.random_range(0..DAY_MS),
                    lat: o.lat(),
                    lon: o.lon(),
                    offender: false,
                });
                // The pass at the incident is always read.
                Some((site, at))
            }
            COMMUTER if trip == 0 && p.commute.is_none() && self.odd_day() != Some(day) => {
                let claim = |(site, at): (usize, i64), label: &str| {
                    let s = w.sites[site].point;
                    Claim {
                        lat: s.lat(),
                        lon: s.lon(),
                        at_ms: at,
                        label: label.to_string(),
                    }
                };
                p.commute = Some((
                    claim(passes[0], "left home"),
                    claim(passes[passes.len() - 1], "arrived at work"),
                ));
                None
            }
            _ => None,
        }
    }
}
