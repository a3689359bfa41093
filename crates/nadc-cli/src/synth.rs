//! Synthetic ANPR traffic for the demo and tests: towns joined by roads,
//! cameras in towns and along roads (each owned by the force whose area it
//! is in), vehicles with UK-format plates making daily trips at road speeds,
//! detection below 100%, a small OCR misread rate with confusable
//! characters, a planted convoy and a planted cloned plate, whose ground
//! truth is returned.
//!
//! Deterministic: the same seed gives the same data.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use nadc_core::{ForceId, GeoPoint, Timestamp};
use nadc_proto::{pb, to_pb_time};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A town: name, owning force, centre.
#[derive(Clone, Debug)]
pub struct Town {
    /// Name.
    pub name: &'static str,
    /// The force whose area it is in.
    pub force: &'static str,
    /// Centre latitude.
    pub lat: f64,
    /// Centre longitude.
    pub lon: f64,
}

const TOWNS: [Town; 12] = [
    Town {
        name: "Bristol",
        force: "AVON",
        lat: 51.4545,
        lon: -2.5879,
    },
    Town {
        name: "Bath",
        force: "AVON",
        lat: 51.3811,
        lon: -2.3590,
    },
    Town {
        name: "Weston-super-Mare",
        force: "AVON",
        lat: 51.3461,
        lon: -2.9770,
    },
    Town {
        name: "Maidstone",
        force: "KENT",
        lat: 51.2704,
        lon: 0.5227,
    },
    Town {
        name: "Canterbury",
        force: "KENT",
        lat: 51.2802,
        lon: 1.0789,
    },
    Town {
        name: "Dover",
        force: "KENT",
        lat: 51.1279,
        lon: 1.3134,
    },
    Town {
        name: "Westminster",
        force: "MET",
        lat: 51.4975,
        lon: -0.1357,
    },
    Town {
        name: "Croydon",
        force: "MET",
        lat: 51.3762,
        lon: -0.0982,
    },
    Town {
        name: "Ealing",
        force: "MET",
        lat: 51.5130,
        lon: -0.3089,
    },
    Town {
        name: "Birmingham",
        force: "WMP",
        lat: 52.4862,
        lon: -1.8904,
    },
    Town {
        name: "Coventry",
        force: "WMP",
        lat: 52.4068,
        lon: -1.5197,
    },
    Town {
        name: "Wolverhampton",
        force: "WMP",
        lat: 52.5870,
        lon: -2.1288,
    },
];

/// Roads between towns (indexes into the town list).
const ROADS: [(usize, usize); 14] = [
    (0, 1),
    (0, 2),
    (1, 8),
    (0, 9),
    (9, 11),
    (9, 10),
    (10, 6),
    (8, 6),
    (6, 7),
    (7, 3),
    (6, 3),
    (3, 4),
    (4, 5),
    (3, 5),
];

const MAKES: [(&str, &[&str]); 8] = [
    ("Ford", &["Fiesta", "Focus", "Transit", "Kuga"]),
    ("Vauxhall", &["Corsa", "Astra", "Mokka"]),
    ("Volkswagen", &["Golf", "Polo", "Passat", "Transporter"]),
    ("BMW", &["3 Series", "1 Series", "X5"]),
    ("Toyota", &["Yaris", "Corolla", "RAV4"]),
    ("Nissan", &["Qashqai", "Micra", "Juke"]),
    ("Audi", &["A3", "A4", "Q5"]),
    ("Mercedes-Benz", &["A-Class", "C-Class", "Sprinter"]),
];
const COLOURS: [&str; 9] = [
    "Black", "White", "Silver", "Grey", "Blue", "Red", "Green", "Yellow", "Orange",
];
const PLATE_LETTERS: &[u8] = b"ABCDEFGHJKLMNOPRSTUVWXY";
const CONFUSABLE: [(char, char); 10] = [
    ('0', 'O'),
    ('O', '0'),
    ('1', 'I'),
    ('I', '1'),
    ('5', 'S'),
    ('S', '5'),
    ('8', 'B'),
    ('B', '8'),
    ('2', 'Z'),
    ('6', 'G'),
];

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Seed for every random choice.
    pub seed: u64,
    /// Vehicles.
    pub vehicles: usize,
    /// Start of the UTC day simulated.
    pub day_start: Timestamp,
    /// Probability a camera reads a passing vehicle.
    pub detection: f64,
    /// Probability a read's VRM has one confusable-character error.
    pub misread: f64,
}

/// A vehicle's identity.
#[derive(Clone, Debug)]
pub struct Vehicle {
    /// The true VRM, e.g. `AB12 CDE`.
    pub plate: String,
    /// Make.
    pub make: &'static str,
    /// Model.
    pub model: &'static str,
    /// Colour.
    pub colour: &'static str,
    /// Home town index.
    pub home: usize,
}

/// Generated data.
#[derive(Debug, Default)]
pub struct SynthData {
    /// Cameras per force.
    pub cameras: BTreeMap<ForceId, Vec<pb::Camera>>,
    /// Reads per force, in capture order.
    pub reads: BTreeMap<ForceId, Vec<pb::Read>>,
    /// Every vehicle.
    pub vehicles: Vec<Vehicle>,
    /// The planted convoy: (target plate, companion plate).
    pub convoy: Option<(String, String)>,
    /// The planted cloned plate: carried by vehicle 2 and by the last
    /// vehicle, which lives at the far side of the country and sets off at
    /// the same time, so the plate is read in two places too far apart.
    pub clone: Option<String>,
}

impl SynthData {
    /// Total reads.
    pub fn total_reads(&self) -> usize {
        self.reads.values().map(Vec::len).sum()
    }
}

/// The towns used.
pub fn towns() -> &'static [Town] {
    &TOWNS
}

struct CameraSite {
    force: ForceId,
    id: String,
    point: GeoPoint,
    lanes: u32,
    bearing: f64,
}

struct World {
    /// Cameras in each town.
    town_cameras: Vec<Vec<usize>>,
    /// Cameras along each road, from its first town to its second.
    road_cameras: HashMap<(usize, usize), Vec<usize>>,
    sites: Vec<CameraSite>,
    mobile: HashMap<usize, usize>,
}

fn offset(lat: f64, lon: f64, north_m: f64, east_m: f64) -> (f64, f64) {
    let dlat = north_m / 111_320.0;
    let dlon = east_m / (111_320.0 * lat.to_radians().cos());
    (lat + dlat, lon + dlon)
}

fn point(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint::new(lat, lon).expect("generated positions are in range")
}

fn force(code: &str) -> ForceId {
    ForceId::new(code).expect("synthetic force codes are valid")
}

fn build_world(rng: &mut ChaCha8Rng, data: &mut SynthData) -> World {
    let mut sites = Vec::new();
    let mut town_cameras = vec![Vec::new(); TOWNS.len()];
    let mut mobile = HashMap::new();
    let mut counters: HashMap<&str, u32> = HashMap::new();
    let mut next_id = |f: &'static str| {
        let n = counters.entry(f).or_default();
        *n += 1;
        format!("{f}-CAM-{n:04}")
    };
    for (ti, t) in TOWNS.iter().enumerate() {
        for _ in 0..8 {
            let (lat, lon) = offset(
                t.lat,
                t.lon,
                rng.random_range(-2500.0..2500.0),
                rng.random_range(-2500.0..2500.0),
            );
            town_cameras[ti].push(sites.len());
            sites.push(CameraSite {
                force: force(t.force),
                id: next_id(t.force),
                point: point(lat, lon),
                lanes: rng.random_range(1..=3),
                bearing: f64::from(rng.random_range(0u32..360)),
            });
        }
        // One mobile (van) camera per town: its reads carry their own GPS.
        mobile.insert(ti, sites.len());
        sites.push(CameraSite {
            force: force(t.force),
            id: format!("{}-VAN-{ti:02}", t.force),
            point: point(t.lat, t.lon),
            lanes: 2,
            bearing: 0.0,
        });
    }
    let mut road_cameras = HashMap::new();
    for &(a, b) in &ROADS {
        let (ta, tb) = (&TOWNS[a], &TOWNS[b]);
        let len = point(ta.lat, ta.lon).distance_m(point(tb.lat, tb.lon));
        let n = ((len / 8000.0) as usize).max(1);
        let mut list = Vec::new();
        for k in 1..=n {
            let f = k as f64 / (n + 1) as f64;
            let (lat, lon) = (
                ta.lat + (tb.lat - ta.lat) * f,
                ta.lon + (tb.lon - ta.lon) * f,
            );
            let (lat, lon) = offset(
                lat,
                lon,
                rng.random_range(-150.0..150.0),
                rng.random_range(-150.0..150.0),
            );
            let owner = if f < 0.5 { ta.force } else { tb.force };
            list.push(sites.len());
            sites.push(CameraSite {
                force: force(owner),
                id: next_id(owner),
                point: point(lat, lon),
                lanes: rng.random_range(2..=4),
                bearing: f64::from(rng.random_range(0u32..360)),
            });
        }
        road_cameras.insert((a, b), list);
    }
    for (i, s) in sites.iter().enumerate() {
        let is_mobile = mobile.values().any(|m| *m == i);
        data.cameras
            .entry(s.force.clone())
            .or_default()
            .push(pb::Camera {
                camera_id: s.id.clone(),
                lat: s.point.lat(),
                lon: s.point.lon(),
                bearing: Some(s.bearing),
                kind: if is_mobile {
                    pb::CameraKind::Mobile
                } else {
                    pb::CameraKind::Fixed
                } as i32,
                lanes: Some(s.lanes),
                description: Some(if is_mobile {
                    "mobile ANPR van".into()
                } else {
                    "synthetic site".into()
                }),
                covers_hard_shoulder: Some(false),
                roundabout: pb::Roundabout::Unspecified as i32,
                range_m: Some(30),
                force: String::new(),
            });
    }
    World {
        town_cameras,
        road_cameras,
        sites,
        mobile,
    }
}

/// Shortest path between towns over the road graph (Dijkstra).
fn route(from: usize, to: usize) -> Vec<usize> {
    let n = TOWNS.len();
    let len = |a: usize, b: usize| {
        point(TOWNS[a].lat, TOWNS[a].lon).distance_m(point(TOWNS[b].lat, TOWNS[b].lon))
    };
    let mut dist = vec![f64::INFINITY; n];
    let mut prev = vec![usize::MAX; n];
    let mut heap = BinaryHeap::new();
    dist[from] = 0.0;
    heap.push((std::cmp::Reverse(0u64), from));
    while let Some((std::cmp::Reverse(d), u)) = heap.pop() {
        if d as f64 > dist[u] {
            continue;
        }
        for &(a, b) in &ROADS {
            let v = if a == u {
                b
            } else if b == u {
                a
            } else {
                continue;
            };
            let nd = dist[u] + len(u, v);
            if nd < dist[v] {
                dist[v] = nd;
                prev[v] = u;
                heap.push((std::cmp::Reverse(nd as u64), v));
            }
        }
    }
    let mut path = vec![to];
    while *path.last().unwrap_or(&from) != from {
        let p = prev[*path.last().unwrap_or(&from)];
        if p == usize::MAX {
            return vec![from];
        }
        path.push(p);
    }
    path.reverse();
    path
}

/// The camera sites passed on a trip, with the seconds from departure.
fn passes(rng: &mut ChaCha8Rng, w: &World, path: &[usize]) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    let mut t = 0.0;
    let mut at = w.sites[*w.town_cameras[path[0]].choose(rng).unwrap_or(&0)].point;
    let mut visit = |site: usize, speed_ms: f64, t: &mut f64, out: &mut Vec<(usize, f64)>| {
        let p = w.sites[site].point;
        *t += at.distance_m(p) / speed_ms;
        at = p;
        out.push((site, *t));
    };
    for (i, &town) in path.iter().enumerate() {
        let cams = &w.town_cameras[town];
        let k = if i == 0 || i + 1 == path.len() { 2 } else { 1 };
        for _ in 0..k {
            let c = *cams.choose(rng).unwrap_or(&cams[0]);
            visit(c, rng.random_range(8.0..13.0), &mut t, &mut out);
        }
        if let Some(&next) = path.get(i + 1) {
            let speed = rng.random_range(24.0..32.0);
            if let Some(list) = w.road_cameras.get(&(town, next)) {
                for &c in list {
                    visit(c, speed, &mut t, &mut out);
                }
            } else if let Some(list) = w.road_cameras.get(&(next, town)) {
                for &c in list.iter().rev() {
                    visit(c, speed, &mut t, &mut out);
                }
            }
        }
    }
    out
}

fn random_plate(rng: &mut ChaCha8Rng) -> String {
    let l = |rng: &mut ChaCha8Rng| PLATE_LETTERS[rng.random_range(0..PLATE_LETTERS.len())] as char;
    let age = if rng.random_bool(0.5) {
        rng.random_range(1..=25)
    } else {
        rng.random_range(51..=75)
    };
    format!(
        "{}{}{:02} {}{}{}",
        l(rng),
        l(rng),
        age,
        l(rng),
        l(rng),
        l(rng)
    )
}

fn misread(rng: &mut ChaCha8Rng, plate: &str) -> String {
    let chars: Vec<char> = plate.chars().collect();
    let spots: Vec<usize> = (0..chars.len())
        .filter(|i| CONFUSABLE.iter().any(|(a, _)| *a == chars[*i]))
        .collect();
    let Some(&i) = spots.choose(rng) else {
        return plate.to_string();
    };
    let mut out = chars.clone();
    if let Some((_, b)) = CONFUSABLE.iter().find(|(a, _)| *a == chars[i]) {
        out[i] = *b;
    }
    out.into_iter().collect()
}

/// Generates a day of traffic.
pub fn generate(cfg: &SynthConfig) -> SynthData {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut data = SynthData::default();
    let world = build_world(&mut rng, &mut data);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..cfg.vehicles {
        let plate = loop {
            let p = random_plate(&mut rng);
            if seen.insert(p.clone()) {
                break p;
            }
        };
        let (make, models) = MAKES[rng.random_range(0..MAKES.len())];
        data.vehicles.push(Vehicle {
            plate,
            make,
            model: models[rng.random_range(0..models.len())],
            colour: COLOURS[rng.random_range(0..COLOURS.len())],
            home: rng.random_range(0..TOWNS.len()),
        });
    }
    // The planted clone: the last vehicle carries vehicle 2's plate and lives
    // at the far side of the country.
    let clone_of = 2;
    if data.vehicles.len() > clone_of + 1 {
        let last = data.vehicles.len() - 1;
        let source = data.vehicles[clone_of].clone();
        let v = &mut data.vehicles[last];
        v.plate = source.plate.clone();
        v.home = (source.home + TOWNS.len() / 2) % TOWNS.len();
        data.clone = Some(source.plate);
    }
    let mut counters: BTreeMap<ForceId, u64> = BTreeMap::new();
    let mut emit =
        |rng: &mut ChaCha8Rng, data: &mut SynthData, v: &Vehicle, site: usize, at_ms: i64| {
            if !rng.random_bool(cfg.detection) {
                return false;
            }
            let s = &world.sites[site];
            let n = counters.entry(s.force.clone()).or_default();
            *n += 1;
            let raw = if rng.random_bool(cfg.misread) {
                misread(rng, &v.plate)
            } else {
                v.plate.clone()
            };
            let detailed = rng.random_bool(0.8);
            let read = pb::Read {
                read_id: format!("{}-{:09}", s.force, n),
                vrm: raw,
                observed_at: Some(to_pb_time(cfg.day_start.plus_millis(at_ms))),
                camera_id: s.id.clone(),
                lat: None,
                lon: None,
                bearing: Some(s.bearing),
                lane: Some(rng.random_range(1..=s.lanes)),
                confidence: Some(rng.random_range(70.0..99.5)),
                make: detailed.then(|| v.make.to_string()),
                model: detailed.then(|| v.model.to_string()),
                colour: detailed.then(|| v.colour.to_string()),
                country: Some("GB".into()),
                patch_image_ref: Some(format!("bof://{}/patch/{}", s.force, n)),
                overview_image_ref: Some(format!("bof://{}/overview/{}", s.force, n)),
                candidates: Vec::new(),
            };
            data.reads.entry(s.force.clone()).or_default().push(read);
            true
        };
    let day_ms = nadc_core::time::MS_PER_DAY;
    let vehicles = data.vehicles.clone();
    let mut clone_depart = None;
    for (vi, v) in vehicles.iter().enumerate() {
        // Vehicle 1 is the planted companion: it only travels with vehicle 0.
        if vi == 1 {
            continue;
        }
        // The convoy target makes a long cross-force journey out and back.
        let trips = if vi == 0 { 2 } else { rng.random_range(1..=2) };
        let mut depart = if vi == 0 {
            6.5 * 3600.0
        } else {
            rng.random_range(6.0 * 3600.0..12.0 * 3600.0)
        };
        // The cloned plate's two cars set off together.
        if vi == clone_of {
            clone_depart = Some(depart);
        } else if data.clone.is_some() && vi == vehicles.len() - 1 {
            depart = clone_depart.unwrap_or(depart);
        }
        let mut here = v.home;
        for _ in 0..trips {
            let dest = if vi == 0 {
                // Out to the far side of the country, then home.
                if here == v.home {
                    (v.home + TOWNS.len() / 2) % TOWNS.len()
                } else {
                    v.home
                }
            } else if rng.random_bool(0.7) {
                let local: Vec<usize> = (0..TOWNS.len())
                    .filter(|t| TOWNS[*t].force == TOWNS[here].force && *t != here)
                    .collect();
                *local.choose(&mut rng).unwrap_or(&here)
            } else {
                rng.random_range(0..TOWNS.len())
            };
            let path = route(here, dest);
            let trip = passes(&mut rng, &world, &path);
            // The planted convoy: vehicle 1 follows vehicle 0 on every trip,
            // 30 to 90 seconds behind.
            let followers: &[(usize, f64)] = if vi == 0 { &[(1, 60.0)] } else { &[] };
            for (site, secs) in &trip {
                let at = ((depart + secs) * 1000.0) as i64;
                if at >= day_ms {
                    break;
                }
                let _ = emit(&mut rng, &mut data, v, *site, at);
                for (f, gap) in followers {
                    let jitter = rng.random_range(-30.0..30.0);
                    let _ = emit(
                        &mut rng,
                        &mut data,
                        &vehicles[*f],
                        *site,
                        at + ((gap + jitter) * 1000.0) as i64,
                    );
                }
                if let Some(&van) = world.mobile.get(&path[0])
                    && world.town_cameras[path[0]].contains(site)
                    && rng.random_bool(0.1)
                {
                    // The van reads it too, with its own GPS a little away.
                    let p = world.sites[*site].point;
                    let (lat, lon) = offset(
                        p.lat(),
                        p.lon(),
                        rng.random_range(-80.0..80.0),
                        rng.random_range(-80.0..80.0),
                    );
                    // Only a read the van made gets the van's GPS (an
                    // undetected pass must not move an earlier van read).
                    if emit(&mut rng, &mut data, v, van, at + 2000)
                        && let Some(r) = data
                            .reads
                            .get_mut(&world.sites[van].force)
                            .and_then(|r| r.last_mut())
                        && r.camera_id == world.sites[van].id
                    {
                        r.lat = Some(lat);
                        r.lon = Some(lon);
                    }
                }
            }
            here = dest;
            depart += trip.last().map_or(0.0, |(_, s)| *s) + rng.random_range(1800.0..4.0 * 3600.0);
        }
    }
    if vehicles.len() >= 2 {
        data.convoy = Some((vehicles[0].plate.clone(), vehicles[1].plate.clone()));
    }
    for reads in data.reads.values_mut() {
        reads.sort_by_key(|r| r.observed_at.map(|t| (t.seconds, t.nanos)));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SynthConfig {
        SynthConfig {
            seed: 7,
            vehicles: 300,
            day_start: Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap(),
            detection: 0.9,
            misread: 0.02,
        }
    }

    #[test]
    fn deterministic_and_plausible() {
        let a = generate(&cfg());
        let b = generate(&cfg());
        assert_eq!(a.total_reads(), b.total_reads());
        assert!(a.total_reads() > 300 * 5, "{}", a.total_reads());
        assert_eq!(a.cameras.len(), 4);
        let first = &a.reads[&force("AVON")][0];
        assert_eq!(first.read_id, b.reads[&force("AVON")][0].read_id);
        // Every read's camera is registered by the same force.
        for (f, reads) in &a.reads {
            let ids: std::collections::HashSet<&str> =
                a.cameras[f].iter().map(|c| c.camera_id.as_str()).collect();
            assert!(reads.iter().all(|r| ids.contains(r.camera_id.as_str())));
        }
        // Mobile reads carry their own position.
        let mobile: Vec<&pb::Read> = a
            .reads
            .values()
            .flatten()
            .filter(|r| r.camera_id.contains("VAN"))
            .collect();
        assert!(!mobile.is_empty());
        assert!(mobile.iter().all(|r| r.lat.is_some() && r.lon.is_some()));
    }

    #[test]
    fn convoy_companion_is_near_the_target() {
        let d = generate(&cfg());
        let (target, companion) = d.convoy.clone().unwrap();
        let reads: Vec<&pb::Read> = d.reads.values().flatten().collect();
        let t: Vec<&&pb::Read> = reads.iter().filter(|r| r.vrm == target).collect();
        let together = t
            .iter()
            .filter(|tr| {
                reads.iter().any(|cr| {
                    cr.vrm == companion
                        && cr.camera_id == tr.camera_id
                        && (cr.observed_at.unwrap().seconds - tr.observed_at.unwrap().seconds).abs()
                            <= 120
                })
            })
            .count();
        assert!(together >= 3, "{together} of {}", t.len());
    }

    #[test]
    fn routes_follow_roads() {
        let r = route(2, 5); // Weston-super-Mare to Dover
        assert_eq!(r.first(), Some(&2));
        assert_eq!(r.last(), Some(&5));
        assert!(r.len() >= 4, "{r:?}");
    }
}
