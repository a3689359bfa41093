//! Synthetic national ANPR traffic: 50 towns across Great Britain, each in
//! its force's area, joined by a road network; cameras in towns and along
//! the roads (fixed, a few covert, and one mobile van per town reading with
//! its own GPS), each owned by the force whose area it is in; vehicles with
//! UK-format plates, make, model and colour and a home town, making daily
//! trips at road speeds, over one or many days; detection below 100% and a
//! small OCR misread rate with confusable characters; a planted convoy and
//! a planted cloned plate, whose ground truth is returned.
//!
//! **Deterministic**: the same configuration gives the same data. Every
//! random choice comes from a generator seeded by the seed and what it is
//! for (vehicle, day, trip, read), never from the order of the simulation.
//!
//! **Streaming**: [`Generator::run`] hands reads to a sink in capture-time
//! order, one at a time. It keeps the vehicles, a schedule of their next
//! departures and the reads of trips under way (an event queue ordered by
//! time), so memory depends on the number of vehicles, not on the number
//! of reads or days: hundreds of millions of reads stream through a few
//! hundred megabytes.
//!
//! **Scale**: camera numbers grow with the vehicles (town cameras at about
//! one per 250 vehicles, spread over the towns by size), so reads per
//! camera stay near what a national network sees (a few thousand a day),
//! rather than piling ever more reads onto a fixed set of cameras.

mod plants;

pub use plants::{Claim, Commuter, Incident, Planted, Plants};

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use nadc_core::{ForceId, GeoPoint, Timestamp};
use nadc_proto::{pb, to_pb_time};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A town: name, owning force, centre, and relative size.
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
    /// Relative size (1 to 6): how many vehicles live there and how many
    /// cameras it has.
    pub weight: u32,
}

const fn town(name: &'static str, force: &'static str, lat: f64, lon: f64, weight: u32) -> Town {
    Town {
        name,
        force,
        lat,
        lon,
        weight,
    }
}

const TOWNS: [Town; 50] = [
    town("Bristol", "AVON", 51.4545, -2.5879, 5),
    town("Bath", "AVON", 51.3811, -2.3590, 1),
    town("Weston-super-Mare", "AVON", 51.3461, -2.9770, 1),
    town("Maidstone", "KENT", 51.2704, 0.5227, 1),
    town("Canterbury", "KENT", 51.2802, 1.0789, 1),
    town("Dover", "KENT", 51.1279, 1.3134, 1),
    town("Westminster", "MET", 51.4975, -0.1357, 6),
    town("Croydon", "MET", 51.3762, -0.0982, 3),
    town("Ealing", "MET", 51.5130, -0.3089, 3),
    town("Birmingham", "WMP", 52.4862, -1.8904, 6),
    town("Coventry", "WMP", 52.4068, -1.5197, 2),
    town("Wolverhampton", "WMP", 52.5870, -2.1288, 2),
    town("Manchester", "GMP", 53.4808, -2.2426, 5),
    town("Bolton", "GMP", 53.5769, -2.4282, 1),
    town("Liverpool", "MERSEYSIDE", 53.4084, -2.9916, 4),
    town("Leeds", "WYP", 53.8008, -1.5491, 4),
    town("Bradford", "WYP", 53.7960, -1.7594, 2),
    town("Sheffield", "SYP", 53.3811, -1.4701, 3),
    town("Newcastle upon Tyne", "NORTHUMBRIA", 54.9783, -1.6178, 3),
    town("Sunderland", "NORTHUMBRIA", 54.9069, -1.3838, 1),
    town("Carlisle", "CUMBRIA", 54.8925, -2.9329, 1),
    town("Kendal", "CUMBRIA", 54.3280, -2.7463, 1),
    town("Preston", "LANCS", 53.7632, -2.7031, 2),
    town("Lancaster", "LANCS", 54.0466, -2.8007, 1),
    town("Chester", "CHESHIRE", 53.1934, -2.8931, 1),
    town("Warrington", "CHESHIRE", 53.3900, -2.5970, 1),
    town("Stoke-on-Trent", "STAFFS", 53.0027, -2.1794, 2),
    town("Nottingham", "NOTTS", 52.9548, -1.1581, 3),
    town("Leicester", "LEICS", 52.6369, -1.1398, 3),
    town("Oxford", "TVP", 51.7520, -1.2577, 2),
    town("Reading", "TVP", 51.4543, -0.9781, 2),
    town("Southampton", "HANTS", 50.9097, -1.4044, 3),
    town("Portsmouth", "HANTS", 50.8198, -1.0880, 2),
    town("Brighton", "SUSSEX", 50.8225, -0.1372, 2),
    town("Chelmsford", "ESSEX", 51.7356, 0.4685, 2),
    town("Colchester", "ESSEX", 51.8959, 0.8919, 1),
    town("Norwich", "NORFOLK", 52.6309, 1.2974, 2),
    town("Cambridge", "CAMBS", 52.2053, 0.1218, 2),
    town("Peterborough", "CAMBS", 52.5695, -0.2405, 1),
    town("Exeter", "DEVON_CORNWALL", 50.7184, -3.5339, 1),
    town("Plymouth", "DEVON_CORNWALL", 50.3755, -4.1427, 2),
    town("Cardiff", "SOUTH_WALES", 51.4816, -3.1791, 3),
    town("Swansea", "SOUTH_WALES", 51.6214, -3.9436, 2),
    town("Glasgow", "SCOTLAND", 55.8642, -4.2518, 5),
    town("Edinburgh", "SCOTLAND", 55.9533, -3.1883, 4),
    town("Aberdeen", "SCOTLAND", 57.1497, -2.0943, 2),
    town("Dundee", "SCOTLAND", 56.4620, -2.9707, 1),
    town("Kingston upon Hull", "HUMBERSIDE", 53.7676, -0.3274, 2),
    town("York", "NYP", 53.9600, -1.0873, 1),
    town("Gloucester", "GLOS", 51.8642, -2.2382, 1),
];

/// The forces of the regional world the demo and small tests use.
pub const SOUTH: [&str; 4] = ["AVON", "KENT", "MET", "WMP"];

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
/// Towns whose centres are within this distance are joined by a road even
/// when neither is among the other's nearest.
const ROAD_NEIGHBOURS: usize = 3;
/// Spacing of cameras along a road.
const ROAD_CAMERA_SPACING_M: f64 = 8_000.0;
/// Vehicles per town camera (see the module documentation).
const VEHICLES_PER_TOWN_CAMERA: usize = 250;
/// One fixed town camera in this many is covert.
const COVERT_EVERY: usize = 40;
/// A regional trip goes to a town at most this far away.
const REGIONAL_M: f64 = 90_000.0;

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Seed for every random choice.
    pub seed: u64,
    /// Vehicles.
    pub vehicles: usize,
    /// Start of the first UTC day simulated.
    pub day_start: Timestamp,
    /// Days simulated (at least 1).
    pub days: u32,
    /// Probability a camera reads a passing vehicle.
    pub detection: f64,
    /// Probability a read's VRM has one confusable-character error.
    pub misread: f64,
    /// Only the towns of these forces (all of Great Britain when empty).
    pub forces: Vec<String>,
}

impl SynthConfig {
    /// One day of national traffic with the usual detection and misread
    /// rates.
    pub fn new(seed: u64, vehicles: usize, day_start: Timestamp) -> Self {
        Self {
            seed,
            vehicles,
            day_start,
            days: 1,
            detection: 0.92,
            misread: 0.01,
            forces: Vec::new(),
        }
    }

    /// The same, restricted to the towns of `forces`.
    pub fn in_forces(mut self, forces: &[&str]) -> Self {
        self.forces = forces.iter().map(|f| f.to_string()).collect();
        self
    }
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
    /// Home town (an index into [`Generator::towns`]).
    pub home: usize,
}

/// The planted patterns.
#[derive(Clone, Debug, Default)]
pub struct Truth {
    /// The planted convoy: (target plate, companion plate). The companion
    /// travels only with the target, 30 to 90 seconds behind it, on every
    /// trip of every day.
    pub convoy: Option<(String, String)>,
    /// The planted cloned plate: carried by vehicle 2 and by the last
    /// vehicle, which lives at the far side of the country and sets off at
    /// the same time on the first day, so the plate is read in two places
    /// too far apart.
    pub clone: Option<String>,
}

/// Generated data, collected in memory (the demo and tests; `nadc gen`
/// streams instead).
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
    /// The planted cloned plate.
    pub clone: Option<String>,
}

impl SynthData {
    /// Total reads.
    pub fn total_reads(&self) -> usize {
        self.reads.values().map(Vec::len).sum()
    }
}

/// Every town of the national world.
pub fn towns() -> &'static [Town] {
    &TOWNS
}

struct CameraSite {
    force: ForceId,
    id: String,
    point: GeoPoint,
    lanes: u32,
    bearing: f64,
    kind: pb::CameraKind,
}

/// A vehicle, compactly (millions are held).
struct Car {
    plate: String,
    make: u8,
    model: u8,
    colour: u8,
    home: u16,
}

/// Towns, roads and cameras.
struct World {
    towns: Vec<&'static Town>,
    /// For each town, its road neighbours and the road's length.
    adj: Vec<Vec<(usize, f64)>>,
    /// `next[a][b]`: the next town on the shortest road route from a to b.
    next: Vec<Vec<usize>>,
    /// Towns within [`REGIONAL_M`] of each town.
    regional: Vec<Vec<usize>>,
    town_cameras: Vec<Vec<usize>>,
    /// Cameras along each road, from its first town to its second.
    road_cameras: HashMap<(usize, usize), Vec<usize>>,
    /// Each town's mobile van.
    vans: Vec<usize>,
    sites: Vec<CameraSite>,
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

/// A generator for one purpose, seeded from the seed and `parts`: the
/// stream of choices for (vehicle, day, trip) does not depend on what else
/// the simulation did before.
fn rng_for(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    // SplitMix64 over the parts: well mixed, fixed forever.
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for p in parts {
        h = h.wrapping_add(*p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    ChaCha8Rng::seed_from_u64(h)
}

impl World {
    fn build(cfg: &SynthConfig) -> World {
        let mut rng = rng_for(cfg.seed, &[u64::from_be_bytes(*b"world\0\0\0")]);
        let towns: Vec<&'static Town> = TOWNS
            .iter()
            .filter(|t| cfg.forces.is_empty() || cfg.forces.iter().any(|f| f == t.force))
            .collect();
        let n = towns.len();
        let dist = |a: usize, b: usize| {
            nadc_core::geo::haversine_m(
                point(towns[a].lat, towns[a].lon),
                point(towns[b].lat, towns[b].lon),
            )
        };
        // Roads: each town to its nearest few, plus the shortest links that
        // join what is still apart (a minimum spanning tree), so every town
        // is reachable.
        let mut roads: Vec<(usize, usize)> = Vec::new();
        for a in 0..n {
            let mut near: Vec<usize> = (0..n).filter(|b| *b != a).collect();
            near.sort_by(|x, y| dist(a, *x).total_cmp(&dist(a, *y)));
            for &b in near.iter().take(ROAD_NEIGHBOURS) {
                roads.push((a.min(b), a.max(b)));
            }
        }
        let mut pairs: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect();
        pairs.sort_by(|x, y| dist(x.0, x.1).total_cmp(&dist(y.0, y.1)));
        let mut component: Vec<usize> = (0..n).collect();
        fn root(c: &mut [usize], mut i: usize) -> usize {
            while c[i] != i {
                c[i] = c[c[i]];
                i = c[i];
            }
            i
        }
        for &(a, b) in &roads {
            let (ra, rb) = (root(&mut component, a), root(&mut component, b));
            component[ra] = rb;
        }
        for (a, b) in pairs {
            let (ra, rb) = (root(&mut component, a), root(&mut component, b));
            if ra != rb {
                component[ra] = rb;
                roads.push((a, b));
            }
        }
        roads.sort_unstable();
        roads.dedup();
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in &roads {
            adj[a].push((b, dist(a, b)));
            adj[b].push((a, dist(a, b)));
        }
        let next = (0..n).map(|from| next_hops(&adj, from)).collect();
        let regional = (0..n)
            .map(|a| {
                (0..n)
                    .filter(|b| *b != a && dist(a, *b) <= REGIONAL_M)
                    .collect()
            })
            .collect();

        let mut sites = Vec::new();
        let mut counters: HashMap<&str, u32> = HashMap::new();
        let mut next_id = |f: &'static str| {
            let c = counters.entry(f).or_default();
            *c += 1;
            format!("{f}-CAM-{c:05}")
        };
        let weights: u32 = towns.iter().map(|t| t.weight).sum();
        let scaled = cfg.vehicles / VEHICLES_PER_TOWN_CAMERA;
        let mut town_cameras = vec![Vec::new(); n];
        let mut vans = Vec::with_capacity(n);
        for (ti, t) in towns.iter().enumerate() {
            let share = (scaled as f64 * f64::from(t.weight) / f64::from(weights.max(1))) as usize;
            let count = share.max(6 + 2 * t.weight as usize);
            let radius = 1_500.0 + 500.0 * f64::from(t.weight);
            for _ in 0..count {
                // Uniform over the town's disc.
                let r = radius * rng.random::<f64>().sqrt();
                let a = rng.random_range(0.0..std::f64::consts::TAU);
                let (lat, lon) = offset(t.lat, t.lon, r * a.sin(), r * a.cos());
                town_cameras[ti].push(sites.len());
                sites.push(CameraSite {
                    force: force(t.force),
                    id: next_id(t.force),
                    point: point(lat, lon),
                    lanes: rng.random_range(1..=3),
                    bearing: f64::from(rng.random_range(0u32..360)),
                    kind: if sites.len() % COVERT_EVERY == COVERT_EVERY - 1 {
                        pb::CameraKind::Covert
                    } else {
                        pb::CameraKind::Fixed
                    },
                });
            }
            // One mobile (van) camera per town: its reads carry their own GPS.
            vans.push(sites.len());
            sites.push(CameraSite {
                force: force(t.force),
                id: format!("{}-VAN-{ti:02}", t.force),
                point: point(t.lat, t.lon),
                lanes: 2,
                bearing: 0.0,
                kind: pb::CameraKind::Mobile,
            });
        }
        let mut road_cameras = HashMap::new();
        for &(a, b) in &roads {
            let (ta, tb) = (towns[a], towns[b]);
            let k = ((dist(a, b) / ROAD_CAMERA_SPACING_M) as usize).max(1);
            let mut list = Vec::with_capacity(k);
            for i in 1..=k {
                let f = i as f64 / (k + 1) as f64;
                let (lat, lon) = offset(
                    ta.lat + (tb.lat - ta.lat) * f,
                    ta.lon + (tb.lon - ta.lon) * f,
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
                    kind: pb::CameraKind::Fixed,
                });
            }
            road_cameras.insert((a, b), list);
        }
        World {
            towns,
            adj,
            next,
            regional,
            town_cameras,
            road_cameras,
            vans,
            sites,
        }
    }

    /// The towns on the shortest road route from `from` to `to`, both
    /// included.
    fn route(&self, from: usize, to: usize) -> Vec<usize> {
        let mut path = vec![from];
        let mut at = from;
        while at != to {
            at = self.next[at][to];
            if at == usize::MAX || path.len() > self.towns.len() {
                return vec![from];
            }
            path.push(at);
        }
        path
    }

    /// The camera sites passed on a trip along `path`, with the seconds
    /// from departure: a few cameras in the first and last towns at urban
    /// speeds, one in each town passed through, and every camera along the
    /// roads at road speeds. A trip within one town visits two to four of
    /// its cameras.
    fn passes(&self, rng: &mut ChaCha8Rng, path: &[usize]) -> Vec<(usize, f64)> {
        let mut out = Vec::new();
        let mut t = 0.0;
        let start = &self.town_cameras[path[0]];
        let mut at = self.sites[*start.choose(rng).unwrap_or(&start[0])].point;
        let mut visit = |site: usize, speed_ms: f64, t: &mut f64, out: &mut Vec<(usize, f64)>| {
            let p = self.sites[site].point;
            // Roads wind: about 30 % longer than the straight line.
            // Travel times on the sphere: the generator's data stays as it was.
            *t += 1.3 * nadc_core::geo::haversine_m(at, p) / speed_ms + 1.0;
            at = p;
            out.push((site, *t));
        };
        if path.len() == 1 {
            for _ in 0..rng.random_range(2..=4) {
                let c = *start.choose(rng).unwrap_or(&start[0]);
                visit(c, rng.random_range(7.0..12.0), &mut t, &mut out);
            }
            return out;
        }
        for (i, &town) in path.iter().enumerate() {
            let cams = &self.town_cameras[town];
            let k = if i == 0 || i + 1 == path.len() { 2 } else { 1 };
            for _ in 0..k {
                let c = *cams.choose(rng).unwrap_or(&cams[0]);
                visit(c, rng.random_range(8.0..13.0), &mut t, &mut out);
            }
            if let Some(&next) = path.get(i + 1) {
                let speed = rng.random_range(24.0..32.0);
                if let Some(list) = self.road_cameras.get(&(town, next)) {
                    for &c in list {
                        visit(c, speed, &mut t, &mut out);
                    }
                } else if let Some(list) = self.road_cameras.get(&(next, town)) {
                    for &c in list.iter().rev() {
                        visit(c, speed, &mut t, &mut out);
                    }
                }
            }
        }
        out
    }

    fn cameras(&self) -> BTreeMap<ForceId, Vec<pb::Camera>> {
        let mut out: BTreeMap<ForceId, Vec<pb::Camera>> = BTreeMap::new();
        for s in &self.sites {
            out.entry(s.force.clone()).or_default().push(pb::Camera {
                camera_id: s.id.clone(),
                lat: s.point.lat(),
                lon: s.point.lon(),
                bearing: Some(s.bearing),
                kind: s.kind as i32,
                lanes: Some(s.lanes),
                description: Some(
                    match s.kind {
                        pb::CameraKind::Mobile => "mobile ANPR van",
                        pb::CameraKind::Covert => "covert site",
                        _ => "synthetic site",
                    }
                    .into(),
                ),
                covers_hard_shoulder: Some(false),
                roundabout: pb::Roundabout::Unspecified as i32,
                range_m: Some(30),
                force: String::new(),
            });
        }
        out
    }
}

/// Dijkstra from `from`: for every town, the first hop on the way there.
fn next_hops(adj: &[Vec<(usize, f64)>], from: usize) -> Vec<usize> {
    let n = adj.len();
    let mut dist = vec![f64::INFINITY; n];
    let mut first = vec![usize::MAX; n];
    let mut heap = BinaryHeap::new();
    dist[from] = 0.0;
    first[from] = from;
    heap.push((Reverse(0u64), from));
    while let Some((Reverse(d), u)) = heap.pop() {
        if d as f64 > dist[u] {
            continue;
        }
        for &(v, len) in &adj[u] {
            let nd = dist[u] + len;
            if nd < dist[v] {
                dist[v] = nd;
                first[v] = if u == from { v } else { first[u] };
                heap.push((Reverse(nd as u64), v));
            }
        }
    }
    first
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

/// Something due at a time in the simulation.
enum Event {
    /// A vehicle sets off on its `trip`-th trip of `day`.
    Depart { vehicle: u32, day: u32, trip: u32 },
    /// A camera reads a vehicle; `salt` seeds the read's own details.
    Read {
        vehicle: u32,
        site: u32,
        salt: u64,
        gps: Option<(f64, f64)>,
    },
}

/// An event and when it is due.
struct Due {
    at_ms: i64,
    order: u64,
    event: Event,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.order) == (other.at_ms, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.order).cmp(&(other.at_ms, other.order))
    }
}

/// The event queue: earliest first; ties in the order they were scheduled.
/// Nothing due after the simulated days is kept.
struct Schedule {
    heap: BinaryHeap<Reverse<Due>>,
    order: u64,
    end_ms: i64,
}

impl Schedule {
    fn push(&mut self, at_ms: i64, event: Event) {
        if at_ms >= self.end_ms {
            return;
        }
        self.order += 1;
        self.heap.push(Reverse(Due {
            at_ms,
            order: self.order,
            event,
        }));
    }

    fn pop_before(&mut self, limit_ms: i64) -> Option<Due> {
        if self.heap.peek()?.0.at_ms >= limit_ms {
            return None;
        }
        self.heap.pop().map(|Reverse(d)| d)
    }
}

/// Where a vehicle is and what it has left to do today.
#[derive(Clone, Copy, Default)]
struct Whereabouts {
    here: u16,
    trips_left: u32,
}

/// A configured generator: the world and the vehicles, ready to run.
pub struct Generator {
    cfg: SynthConfig,
    world: World,
    cars: Vec<Car>,
    truth: Truth,
    /// What the analysis plants left during the run (`plants`).
    planted: std::sync::Mutex<Planted>,
}

/// Vehicle 0 is the convoy target, vehicle 1 its companion, vehicle 2 and
/// the last vehicle share the cloned plate.
const TARGET: usize = 0;
const COMPANION: usize = 1;
const CLONE_OF: usize = 2;

impl Generator {
    /// Builds the world and the vehicles.
    pub fn new(cfg: &SynthConfig) -> Generator {
        let world = World::build(cfg);
        let mut rng = rng_for(cfg.seed, &[u64::from_be_bytes(*b"vehicles")]);
        let total_weight: u32 = world.towns.iter().map(|t| t.weight).sum();
        let mut seen = HashSet::with_capacity(cfg.vehicles);
        let mut cars = Vec::with_capacity(cfg.vehicles);
        for _ in 0..cfg.vehicles {
            let plate = loop {
                let p = random_plate(&mut rng);
                if seen.insert(p.clone()) {
                    break p;
                }
            };
            let make = rng.random_range(0..MAKES.len());
            // Where people live follows the towns' sizes.
            let mut pick = rng.random_range(0..total_weight.max(1));
            let home = world
                .towns
                .iter()
                .position(|t| {
                    if pick < t.weight {
                        true
                    } else {
                        pick -= t.weight;
                        false
                    }
                })
                .unwrap_or(0);
            cars.push(Car {
                plate,
                make: make as u8,
                model: rng.random_range(0..MAKES[make].1.len()) as u8,
                colour: rng.random_range(0..COLOURS.len()) as u8,
                home: home as u16,
            });
        }
        drop(seen);
        let mut truth = Truth::default();
        let n = world.towns.len();
        // The planted clone: the last vehicle carries vehicle 2's plate and
        // lives at the far side of the country.
        if cars.len() > CLONE_OF + 1 {
            let last = cars.len() - 1;
            let plate = cars[CLONE_OF].plate.clone();
            cars[last].plate = plate.clone();
            cars[last].home = ((usize::from(cars[CLONE_OF].home) + n / 2) % n) as u16;
            truth.clone = Some(plate);
        }
        if cars.len() > COMPANION {
            truth.convoy = Some((cars[TARGET].plate.clone(), cars[COMPANION].plate.clone()));
        }
        Generator {
            cfg: cfg.clone(),
            world,
            cars,
            truth,
            planted: Default::default(),
        }
    }

    /// The towns of this world.
    pub fn towns(&self) -> Vec<&'static Town> {
        self.world.towns.clone()
    }

    /// Every camera, per owning force.
    pub fn cameras(&self) -> BTreeMap<ForceId, Vec<pb::Camera>> {
        self.world.cameras()
    }

    /// The planted patterns.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// What the analysis plants left in the run so far (incidents, the
    /// commuter's journey).
    pub fn planted(&self) -> Planted {
        std::mem::take(&mut *self.planted.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Every vehicle.
    pub fn vehicles(&self) -> Vec<Vehicle> {
        self.cars.iter().map(|c| self.vehicle(c)).collect()
    }

    fn vehicle(&self, c: &Car) -> Vehicle {
        let (make, models) = MAKES[usize::from(c.make)];
        Vehicle {
            plate: c.plate.clone(),
            make,
            model: models[usize::from(c.model)],
            colour: COLOURS[usize::from(c.colour)],
            home: usize::from(c.home),
        }
    }

    /// Runs the simulation, handing each read to `sink` with its owning
    /// force, in capture-time order. Returns the number of reads.
    pub fn run(&self, sink: &mut dyn FnMut(&ForceId, pb::Read)) -> u64 {
        const DAY_MS: i64 = nadc_core::time::MS_PER_DAY;
        let start_ms = self.cfg.day_start.millis();
        let days = self.cfg.days.max(1);
        let mut schedule = Schedule {
            heap: BinaryHeap::new(),
            order: 0,
            end_ms: start_ms + i64::from(days) * DAY_MS,
        };
        let mut state: Vec<Whereabouts> = self
            .cars
            .iter()
            .map(|c| Whereabouts {
                here: c.home,
                trips_left: 0,
            })
            .collect();
        let mut counters: HashMap<ForceId, u64> = HashMap::new();
        let mut total = 0u64;
        for day in 0..days {
            let day_ms = start_ms + i64::from(day) * DAY_MS;
            for (v, at) in state.iter_mut().enumerate() {
                if let Some((first, trips)) = self.plan_day(v, day) {
                    at.trips_left = trips - 1;
                    schedule.push(
                        day_ms + first,
                        Event::Depart {
                            vehicle: v as u32,
                            day,
                            trip: 0,
                        },
                    );
                }
            }
            while let Some(due) = schedule.pop_before(day_ms + DAY_MS) {
                match due.event {
                    Event::Depart { vehicle, day, trip } => {
                        self.trip(&mut schedule, &mut state, due.at_ms, vehicle, day, trip);
                    }
                    Event::Read {
                        vehicle,
                        site,
                        salt,
                        gps,
                    } => {
                        if self.silenced(site as usize, due.at_ms) {
                            continue;
                        }
                        let s = &self.world.sites[site as usize];
                        let n = counters.entry(s.force.clone()).or_default();
                        *n += 1;
                        let read = self.read(vehicle as usize, s, *n, due.at_ms, salt, gps);
                        sink(&s.force, read);
                        total += 1;
                    }
                }
            }
        }
        total
    }

    /// Whether vehicle `v` travels on `day`: its first departure (ms into
    /// the day) and how many trips it makes.
    fn plan_day(&self, v: usize, day: u32) -> Option<(i64, u32)> {
        const H: f64 = 3_600_000.0;
        if v == COMPANION {
            // The companion travels only with the target.
            return None;
        }
        if let Some(plan) = self.planted_day(v, day) {
            return plan;
        }
        let mut rng = rng_for(self.cfg.seed, &[v as u64, u64::from(day), 0]);
        let clone_pair = self.truth.clone.is_some() && (v == CLONE_OF || v == self.cars.len() - 1);
        if v == TARGET {
            // The convoy target makes a long cross-country journey out and
            // back every day.
            return Some(((6.5 * H) as i64, 2));
        }
        if clone_pair && day == 0 {
            // The cloned plate's two cars set off together.
            let mut shared = rng_for(self.cfg.seed, &[CLONE_OF as u64, 0, 1]);
            return Some((shared.random_range(7.0 * H..9.0 * H) as i64, 1));
        }
        if !rng.random_bool(0.85) {
            return None;
        }
        let trips = match rng.random_range(0..100) {
            0..45 => 1,
            45..85 => 2,
            _ => 3,
        };
        let at = match rng.random_range(0..100) {
            0..5 => rng.random_range(0.0..6.0 * H),
            5..75 => rng.random_range(6.0 * H..10.0 * H),
            _ => rng.random_range(10.0 * H..18.0 * H),
        };
        Some((at as i64, trips))
    }

    /// Plans a trip leaving at `at_ms`: schedules the reads it makes (the
    /// companion's and the vans' too) and the vehicle's next departure.
    fn trip(
        &self,
        schedule: &mut Schedule,
        state: &mut [Whereabouts],
        at_ms: i64,
        vehicle: u32,
        day: u32,
        trip: u32,
    ) {
        let v = vehicle as usize;
        let w = &self.world;
        let mut rng = rng_for(
            self.cfg.seed,
            &[u64::from(vehicle), u64::from(day), u64::from(trip) + 1],
        );
        let here = usize::from(state[v].here);
        let home = usize::from(self.cars[v].home);
        let n = w.towns.len();
        let dest = if let Some(d) = self.planted_destination(v, day, trip) {
            d
        } else if v == TARGET {
            // Out to the far side of the country, then home.
            if here == home {
                (home + n / 2) % n
            } else {
                home
            }
        } else if self.truth.clone.is_some() && v == self.cars.len() - 1 && day == 0 {
            here
        } else {
            match rng.random_range(0..100) {
                0..50 => here,
                50..88 => *w.regional[here]
                    .choose(&mut rng)
                    .or_else(|| w.adj[here].first().map(|(t, _)| t))
                    .unwrap_or(&here),
                _ => rng.random_range(0..n),
            }
        };
        let path = w.route(here, dest);
        let passes = match self.planted_route_rng(v, here, dest) {
            Some(mut fixed) => w.passes(&mut fixed, &path),
            None => w.passes(&mut rng, &path),
        };
        let timed: Vec<(usize, i64)> = passes
            .iter()
            .map(|&(site, secs)| (site, at_ms + (secs * 1000.0) as i64))
            .collect();
        let always = self.plant_trip(&self.planted, v, day, trip, &timed);
        for &(site, secs) in &passes {
            let at = at_ms + (secs * 1000.0) as i64;
            if always == Some((site, at)) {
                schedule.push(
                    at,
                    Event::Read {
                        vehicle,
                        site: site as u32,
                        salt: rng.next_u64(),
                        gps: None,
                    },
                );
            } else {
                self.sighting(schedule, &mut rng, vehicle, site, at, None);
            }
            if self.planting() && v == plants::HUB {
                // The associates follow, 20 to 100 s behind.
                for a in plants::ASSOCIATES {
                    let gap = rng.random_range(20_000..100_000);
                    self.sighting(schedule, &mut rng, a as u32, site, at + gap, None);
                }
            }
            if v == TARGET && self.cars.len() > COMPANION {
                // The planted convoy: the companion follows, 30 to 90 s
                // behind.
                let gap = rng.random_range(30_000..90_000);
                self.sighting(schedule, &mut rng, COMPANION as u32, site, at + gap, None);
            }
            let van = w.vans[path[0]];
            if w.town_cameras[path[0]].contains(&site) && rng.random_bool(0.1) {
                // The town's van reads it too, with its own GPS a little
                // away.
                let p = w.sites[site].point;
                let gps = offset(
                    p.lat(),
                    p.lon(),
                    rng.random_range(-80.0..80.0),
                    rng.random_range(-80.0..80.0),
                );
                self.sighting(schedule, &mut rng, vehicle, van, at + 2_000, Some(gps));
            }
        }
        state[v].here = dest as u16;
        if state[v].trips_left > 0 {
            state[v].trips_left -= 1;
            let end = passes.last().map_or(0.0, |(_, s)| *s);
            let dwell = rng.random_range(1_800.0..4.0 * 3_600.0);
            let next = self
                .planted_next_departure(v, at_ms)
                .unwrap_or(at_ms + ((end + dwell) * 1000.0) as i64);
            schedule.push(
                next,
                Event::Depart {
                    vehicle,
                    day,
                    trip: trip + 1,
                },
            );
        }
    }

    /// A vehicle passes a camera: a read, if the camera reads it.
    fn sighting(
        &self,
        schedule: &mut Schedule,
        rng: &mut ChaCha8Rng,
        vehicle: u32,
        site: usize,
        at_ms: i64,
        gps: Option<(f64, f64)>,
    ) {
        if rng.random_bool(self.cfg.detection) {
            let salt = rng.next_u64();
            schedule.push(
                at_ms,
                Event::Read {
                    vehicle,
                    site: site as u32,
                    salt,
                    gps,
                },
            );
        }
    }

    fn read(
        &self,
        v: usize,
        s: &CameraSite,
        n: u64,
        at_ms: i64,
        salt: u64,
        gps: Option<(f64, f64)>,
    ) -> pb::Read {
        let mut rng = ChaCha8Rng::seed_from_u64(salt);
        let car = &self.cars[v];
        let raw = if rng.random_bool(self.cfg.misread) {
            misread(&mut rng, &car.plate)
        } else {
            car.plate.clone()
        };
        let detailed = rng.random_bool(0.8);
        let (make, models) = MAKES[usize::from(car.make)];
        let force = s.force.as_str();
        pb::Read {
            read_id: format!("{force}-{n:010}"),
            vrm: raw,
            observed_at: Some(to_pb_time(Timestamp::from_millis(at_ms))),
            camera_id: s.id.clone(),
            lat: gps.map(|g| g.0),
            lon: gps.map(|g| g.1),
            bearing: Some(s.bearing),
            lane: Some(rng.random_range(1..=s.lanes)),
            confidence: Some(rng.random_range(70.0..99.5)),
            make: detailed.then(|| make.to_string()),
            model: detailed.then(|| models[usize::from(car.model)].to_string()),
            colour: detailed.then(|| COLOURS[usize::from(car.colour)].to_string()),
            country: Some("GB".into()),
            patch_image_ref: Some(format!("bof://{force}/patch/{n}")),
            overview_image_ref: Some(format!("bof://{force}/overview/{n}")),
            candidates: Vec::new(),
        }
    }
}

/// Generates the traffic and collects it in memory (small volumes only:
/// `nadc gen` streams).
pub fn generate(cfg: &SynthConfig) -> SynthData {
    let g = Generator::new(cfg);
    let mut reads: BTreeMap<ForceId, Vec<pb::Read>> = BTreeMap::new();
    g.run(&mut |f, r| reads.entry(f.clone()).or_default().push(r));
    SynthData {
        cameras: g.cameras(),
        reads,
        vehicles: g.vehicles(),
        convoy: g.truth.convoy.clone(),
        clone: g.truth.clone.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SynthConfig {
        let mut c = SynthConfig::new(
            7,
            300,
            Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap(),
        )
        .in_forces(&SOUTH);
        c.detection = 0.9;
        c.misread = 0.02;
        c
    }

    fn time(r: &pb::Read) -> (i64, i32) {
        r.observed_at.map(|t| (t.seconds, t.nanos)).unwrap()
    }

    #[test]
    fn deterministic_and_plausible() {
        let a = generate(&cfg());
        let b = generate(&cfg());
        assert_eq!(a.reads, b.reads);
        assert!(a.total_reads() > 300 * 4, "{}", a.total_reads());
        assert_eq!(a.cameras.len(), 4);
        assert_ne!(generate(&SynthConfig { seed: 8, ..cfg() }).reads, a.reads);
        for (f, reads) in &a.reads {
            // Every read's camera is registered by the same force, and
            // each force's reads come in capture order.
            let ids: HashSet<&str> = a.cameras[f].iter().map(|c| c.camera_id.as_str()).collect();
            assert!(reads.iter().all(|r| ids.contains(r.camera_id.as_str())));
            assert!(reads.windows(2).all(|w| time(&w[0]) <= time(&w[1])));
            let unique: HashSet<&str> = reads.iter().map(|r| r.read_id.as_str()).collect();
            assert_eq!(unique.len(), reads.len());
        }
        // Mobile reads carry their own position; fixed ones do not.
        let (mobile, fixed): (Vec<&pb::Read>, Vec<&pb::Read>) = a
            .reads
            .values()
            .flatten()
            .partition(|r| r.camera_id.contains("VAN"));
        assert!(!mobile.is_empty());
        assert!(mobile.iter().all(|r| r.lat.is_some() && r.lon.is_some()));
        assert!(fixed.iter().all(|r| r.lat.is_none()));
        // Some reads are misread, by one confusable character.
        let plates: HashSet<&str> = a.vehicles.iter().map(|v| v.plate.as_str()).collect();
        let misreads: Vec<&&pb::Read> = fixed
            .iter()
            .filter(|r| !plates.contains(r.vrm.as_str()))
            .collect();
        assert!(!misreads.is_empty());
        assert!(misreads.iter().all(|r| plates.iter().any(|p| {
            p.len() == r.vrm.len()
                && p.chars().zip(r.vrm.chars()).filter(|(x, y)| x != y).count() == 1
        })));
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
        // The companion is never read away from the target.
        let alone = reads
            .iter()
            .filter(|cr| cr.vrm == companion)
            .filter(|cr| {
                !t.iter().any(|tr| {
                    cr.camera_id == tr.camera_id
                        && (cr.observed_at.unwrap().seconds - tr.observed_at.unwrap().seconds).abs()
                            <= 120
                })
            })
            .count();
        assert!(
            alone * 4 <= together,
            "{alone} companion reads away from the target"
        );
    }

    #[test]
    fn the_cloned_plate_is_read_too_far_apart_too_soon() {
        let d = generate(&cfg());
        let plate = d.clone.clone().unwrap();
        let cams: HashMap<&str, GeoPoint> = d
            .cameras
            .values()
            .flatten()
            .map(|c| (c.camera_id.as_str(), point(c.lat, c.lon)))
            .collect();
        let seen: Vec<(i64, GeoPoint)> = d
            .reads
            .values()
            .flatten()
            .filter(|r| r.vrm == plate && !r.camera_id.contains("VAN"))
            .map(|r| (r.observed_at.unwrap().seconds, cams[r.camera_id.as_str()]))
            .collect();
        let impossible = seen.iter().any(|(ta, pa)| {
            seen.iter().any(|(tb, pb)| {
                let secs = (ta - tb).abs().max(1) as f64;
                nadc_core::geo::haversine_m(*pa, *pb) / secs > 70.0
            })
        });
        assert!(impossible, "{seen:?}");
    }

    #[test]
    fn national_routes_follow_roads_and_reach_every_town() {
        let w = World::build(&SynthConfig::new(1, 1_000, Timestamp::EPOCH));
        let name = |n: &str| w.towns.iter().position(|t| t.name == n).unwrap();
        let r = w.route(name("Plymouth"), name("Aberdeen"));
        assert_eq!(r.first(), Some(&name("Plymouth")));
        assert_eq!(r.last(), Some(&name("Aberdeen")));
        assert!(r.len() >= 5, "{r:?}");
        for pair in r.windows(2) {
            assert!(w.adj[pair[0]].iter().any(|(t, _)| *t == pair[1]), "{r:?}");
        }
        for a in 0..w.towns.len() {
            for b in 0..w.towns.len() {
                assert_eq!(w.route(a, b).last(), Some(&b));
            }
        }
        let forces: HashSet<&str> = w.towns.iter().map(|t| t.force).collect();
        assert!(forces.len() >= 25, "{}", forces.len());
    }

    #[test]
    fn cameras_grow_with_the_vehicles() {
        let count = |vehicles| {
            World::build(&SynthConfig::new(1, vehicles, Timestamp::EPOCH))
                .sites
                .len()
        };
        let (small, large) = (count(1_000), count(500_000));
        assert!(large > 2 * small, "{small} {large}");
        let w = World::build(&SynthConfig::new(1, 1_000, Timestamp::EPOCH));
        assert!(w.sites.iter().any(|s| s.kind == pb::CameraKind::Covert));
        assert_eq!(
            w.sites
                .iter()
                .filter(|s| s.kind == pb::CameraKind::Mobile)
                .count(),
            w.towns.len()
        );
    }

    #[test]
    fn many_days_stream_in_capture_order() {
        let mut c = SynthConfig::new(
            3,
            2_000,
            Timestamp::parse_rfc3339("2026-11-20T00:00:00Z").unwrap(),
        );
        c.days = 3;
        let g = Generator::new(&c);
        let mut last = (i64::MIN, 0);
        let mut days = HashSet::new();
        let mut ordered = true;
        let n = g.run(&mut |_, r| {
            ordered &= time(&r) >= last;
            last = time(&r);
            days.insert(r.observed_at.unwrap().seconds / 86_400);
        });
        assert!(ordered);
        assert_eq!(days.len(), 3, "{days:?}");
        // About the same traffic each day.
        let one = Generator::new(&SynthConfig { days: 1, ..c }).run(&mut |_, _| {});
        assert!(n > 2 * one && n < 4 * one, "{n} over 3 days, {one} in one");
    }
}
