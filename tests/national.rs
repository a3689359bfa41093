//! A national answer is one node's answer. For fixed seeds, random reads of
//! three forces (a few plates, ties in time, positions around three sites
//! with cameras and on a road without, where only mobile ANPR reads) go to
//! their forces' nodes of a cluster, a quarter to a second node too, some
//! with a twin of another force (same read id, time and plate), and all to
//! one reference node. Timelines, a wildcard VRM search and two geographic
//! searches (near the sites; on the road), paged by offset at node-1, give
//! the reference node's
//! reads and a brute-force filter's, each once, in order, each from a node
//! holding it. With node-3 stopped, answers are partial, name it, and hold
//! exactly what node-1 and node-2 hold.

mod support;

use std::collections::BTreeMap;

use nadc_bof::pb;
use nadc_core::Timestamp;
use support::cluster::{Cluster, NODES};
use support::{Harness, now};
use tonic::transport::Channel;

/// The seeds: each a fresh cluster and reference node.
const SEEDS: [u64; 3] = [0x5EED_0001, 0x00C0_FFEE, 42];
/// Reads generated per seed (before twins), and plates in the pool.
const READS: usize = 200;
const POOL: usize = 5;
/// The sites, microdegrees: Bristol, 3 km east, 5 km north-west, each
/// with a fixed camera; and a road 90 km east with none, where only mobile
/// ANPR reads (each with its own GPS position).
const SITES: [(i32, i32); 3] = [
    (51_454_500, -2_587_900),
    (51_460_000, -2_540_000),
    (51_500_000, -2_600_000),
];
const ROAD: (i32, i32) = (51_400_000, -1_300_000);
/// Where reads are taken: the sites, then the road.
const PLACES: [(i32, i32); 4] = [SITES[0], SITES[1], SITES[2], ROAD];
/// The geographic searches' areas: place, radius in metres, inclusive
/// window (from and to, hours before now). The first search has the first
/// two, whose circles overlap; the second the road's, which no camera of
/// any node is near.
const AREAS: [(usize, f64, i64, i64); 3] = [
    (0, 2_000.0, 72, 24),
    (1, 2_500.0, 48, 0),
    (3, 3_000.0, 96, 0),
];
/// Page sizes (a timeline, with no offset, is only cut at its limit).
const GEO_PAGE: u32 = 7;
const VRM_PAGE: u32 = 25;
const TIMELINE_CUT: u32 = 5;
const HOUR: i64 = 3_600_000;
/// Which nodes are up: all, or all but node-3.
const UP: [bool; 3] = [true; 3];
const SURVIVORS: [bool; 3] = [true, true, false];

/// splitmix64: a seed gives the same data everywhere.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// Node `home`, and in a quarter of cases one other node too.
    fn holders(&mut self, home: usize) -> Vec<usize> {
        let mut on = vec![home];
        if self.chance(25) {
            on.push((home + 1 + self.below(2)) % 3);
        }
        on
    }
}

/// A generated read.
#[derive(Clone, Debug)]
struct Gen {
    /// The owning force: an index into `NODES` (node i is force i's home).
    force: usize,
    id: String,
    /// The normalised VRM, and as the BOF sends it.
    vrm: String,
    raw: String,
    millis: i64,
    /// A site's camera `S<site>`, or `GPS-<k>` with the read's own position.
    camera: String,
    /// Where it was read, microdegrees.
    pos: (i32, i32),
    /// The cluster's nodes holding it.
    holders: Vec<usize>,
}

struct Data {
    pool: Vec<String>,
    reads: Vec<Gen>,
    /// (owning force, BOF read id) to the read.
    by_id: BTreeMap<(String, String), usize>,
}

fn metres(a: (i32, i32), b: (i32, i32)) -> f64 {
    let d = |v: i32| f64::from(v) / 1e6;
    nadc_oracle::distance_m(d(a.0), d(a.1), d(b.0), d(b.1))
}

/// The areas a read falls in, by brute force: inside the circle (by
/// Vincenty's geodesic) and the window.
fn areas_of(g: &Gen, areas: &[(usize, f64, i64, i64)]) -> Vec<u32> {
    let t = now().millis();
    (0..areas.len() as u32)
        .filter(|&a| {
            let (place, radius, from_h, to_h) = areas[a as usize];
            let when = t - from_h * HOUR..=t - to_h * HOUR;
            when.contains(&g.millis) && metres(g.pos, PLACES[place]) <= radius
        })
        .collect()
}

fn generate(seed: u64) -> Data {
    let mut rng = Rng(seed);
    let mut pool: Vec<String> = Vec::new();
    while pool.len() < POOL {
        let digits = rng.below(100);
        let mut letter = || (b'A' + rng.below(26) as u8) as char;
        let v = format!("PX{digits:02}{}{}{}", letter(), letter(), letter());
        if !pool.contains(&v) {
            pool.push(v);
        }
    }
    let latest = now().millis() - 60_000;
    let mut reads: Vec<Gen> = Vec::new();
    for n in 0..READS {
        let force = rng.below(3);
        // One in ten at the very millisecond of an earlier read.
        let millis = match reads.len() {
            0 => latest,
            k if rng.chance(10) => reads[rng.below(k)].millis,
            _ => latest - rng.below(96 * HOUR as usize) as i64,
        };
        let site = rng.below(PLACES.len());
        let (camera, pos) = if site < SITES.len() && rng.chance(40) {
            (format!("S{site}"), SITES[site])
        } else {
            // Around the site, never within half a metre of an area's edge
            // (where two correct geodesics could disagree).
            let edge = |p| {
                AREAS
                    .iter()
                    .any(|a| (metres(p, PLACES[a.0]) - a.1).abs() < 0.5)
            };
            let p = loop {
                let (lat, lon) = PLACES[site];
                let lat = lat + rng.below(50_001) as i32 - 25_000;
                let p = (lat, lon + rng.below(80_001) as i32 - 40_000);
                if !edge(p) {
                    break p;
                }
            };
            (format!("GPS-{}", rng.below(4)), p)
        };
        let vrm = pool[rng.below(POOL)].clone();
        let raw = if rng.chance(20) {
            format!("{} {}", &vrm[..4], &vrm[4..]).to_lowercase()
        } else {
            vrm.clone()
        };
        let holders = rng.holders(force);
        let id = format!("r{n}");
        let g = Gen {
            force,
            id,
            vrm,
            raw,
            millis,
            camera,
            pos,
            holders,
        };
        if rng.chance(5) {
            let force = (force + 1 + rng.below(2)) % 3;
            let holders = rng.holders(force);
            reads.push(Gen {
                force,
                holders,
                ..g.clone()
            });
        }
        reads.push(g);
    }
    let by_id = reads
        .iter()
        .enumerate()
        .map(|(i, g)| ((NODES[g.force].1.to_string(), g.id.clone()), i))
        .collect();
    Data { pool, reads, by_id }
}

impl Data {
    /// The read a row names.
    fn read(&self, force: &str, id: &str) -> &Gen {
        match self.by_id.get(&(force.to_string(), id.to_string())) {
            Some(&i) => &self.reads[i],
            None => panic!("a row names no generated read: {force}/{id}"),
        }
    }

    /// Whether a node up holds the read.
    fn held(&self, force: &str, id: &str, up: [bool; 3]) -> bool {
        self.read(force, id).holders.iter().any(|&n| up[n])
    }

    /// The rows of the reads `keep` selects (with their areas) that a node
    /// up holds, as alice (AVON) should see them: another force's read
    /// carries the MoU flag.
    fn brute(
        &self,
        up: [bool; 3],
        ranked: bool,
        keep: impl Fn(&Gen) -> Option<Vec<u32>>,
    ) -> Vec<Seen> {
        let held = |g: &&Gen| g.holders.iter().any(|&n| up[n]);
        let row = |g: &Gen, areas| Seen {
            at: (if ranked { g.vrm.clone() } else { String::new() }, g.millis),
            force: NODES[g.force].1.to_string(),
            id: g.id.clone(),
            vrm: g.vrm.clone(),
            camera: g.camera.clone(),
            pos: (i64::from(g.pos.0), i64::from(g.pos.1)),
            areas,
            mou: g.force != 0,
        };
        let rows = self.reads.iter().filter(held);
        rows.filter_map(|g| keep(g).map(|a| row(g, a))).collect()
    }
}

/// A row as compared: its place in the search's order (the VRM for a
/// ranked VRM search; the capture time), the read's identity (owning
/// force, BOF read id), and what the row says of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    at: (String, i64),
    force: String,
    id: String,
    vrm: String,
    camera: String,
    pos: (i64, i64),
    areas: Vec<u32>,
    mou: bool,
}

fn provenance(r: &pb::ReadRow) -> &pb::Provenance {
    r.provenance.as_ref().expect("every row has its provenance")
}

fn seen(r: &pb::ReadRow, ranked: bool) -> Seen {
    let p = provenance(r);
    let t = p.observed_at.as_ref().and_then(nadc_proto::from_pb_time);
    let mut areas = r.areas.clone();
    areas.sort_unstable();
    Seen {
        at: (
            if ranked { r.vrm.clone() } else { String::new() },
            t.expect("a time").millis(),
        ),
        force: p.owning_force.clone(),
        id: p.bof_read_id.clone(),
        vrm: r.vrm.clone(),
        camera: p.camera_id.clone(),
        pos: ((r.lat * 1e6).round() as i64, (r.lon * 1e6).round() as i64),
        areas,
        mou: r.mou_consult,
    }
}

/// Asserts `got` holds exactly `want`'s rows, each once (in any order).
fn same_reads(got: &[Seen], want: &[Seen], what: &str) {
    let (mut g, mut w) = (got.to_vec(), want.to_vec());
    g.sort();
    w.sort();
    if g == w {
        return;
    }
    let name = |s: &Seen| format!("{}/{}", s.force, s.id);
    let missing: Vec<String> = w.iter().filter(|s| !g.contains(s)).map(name).collect();
    let extra: Vec<String> = g.iter().filter(|s| !w.contains(s)).map(name).collect();
    panic!(
        "{what}: {} rows, {} expected; missing or different: {missing:?}; \
         unexpected or different: {extra:?}",
        g.len(),
        w.len()
    );
}

/// Asserts the rows come in the search's order.
fn in_order(rows: &[Seen], what: &str) {
    let wrong = (1..rows.len()).find(|&i| rows[i - 1].at > rows[i].at);
    assert!(wrong.is_none(), "{what}: row {wrong:?} comes too late");
}

/// Each row's copy: the node that answered it, its sequence number there.
fn copies(rows: &[pb::ReadRow]) -> Vec<(String, u64)> {
    rows.iter()
        .map(provenance)
        .map(|p| (p.node.clone(), p.seq))
        .collect()
}

#[derive(Clone)]
enum Query {
    Timeline(pb::VrmTimelineRequest),
    Vrm(pb::VrmSearchRequest),
    Geo(pb::GeoSearchRequest),
}

/// An answer: its rows and summary.
struct Answer {
    rows: Vec<pb::ReadRow>,
    summary: pb::SearchSummary,
}

/// Asks `q` at `ch` for the page `offset..offset + limit` (limit 0: the
/// node's default, more than any answer here).
async fn ask(ch: &Channel, q: &Query, offset: u32, limit: u32) -> Answer {
    let mut c = pb::search_client::SearchClient::new(ch.clone());
    let answer = match q.clone() {
        Query::Timeline(r) => {
            assert_eq!(offset, 0, "a timeline has no offset");
            c.vrm_timeline(pb::VrmTimelineRequest { limit, ..r }).await
        }
        Query::Vrm(r) => {
            c.vrm_search(pb::VrmSearchRequest { offset, limit, ..r })
                .await
        }
        Query::Geo(r) => {
            c.geo_search(pb::GeoSearchRequest { offset, limit, ..r })
                .await
        }
    };
    let mut s = answer.expect("the search is answered").into_inner();
    let (mut rows, mut summary) = (Vec::new(), None);
    while let Some(chunk) = s.message().await.expect("the answer ends well") {
        match chunk.chunk.expect("a chunk holds something") {
            pb::search_chunk::Chunk::Rows(b) => {
                assert!(summary.is_none(), "rows after the summary");
                rows.extend(b.rows);
            }
            pb::search_chunk::Chunk::Vrms(_) => {}
            pb::search_chunk::Chunk::Summary(x) => {
                assert!(summary.replace(x).is_none(), "two summaries");
            }
        }
    }
    let summary = summary.expect("an answer ends with its summary");
    Answer { rows, summary }
}

/// Asserts the summary names every node of the cluster, in order, none
/// skipped; those up answered, the one down failed saying why and sent
/// nothing; the answer is partial exactly when one failed. And that it
/// counts the rows sent, in all and per owning force.
fn check_summary(a: &Answer, up: [bool; 3], what: &str) {
    let s = &a.summary;
    let nodes = s.nodes.iter().map(|o| (o.node.as_str(), o.ok, o.skipped));
    let want = NODES.iter().zip(up).map(|((n, _), ok)| (*n, ok, false));
    let (nodes, want): (Vec<_>, Vec<_>) = (nodes.collect(), want.collect());
    assert_eq!(nodes, want, "{what}: the nodes' outcomes");
    assert_eq!(s.partial, up.contains(&false), "{what}: partial");
    for o in s.nodes.iter().filter(|o| !o.ok) {
        let said = (o.error.is_empty(), o.rows);
        assert_eq!(said, (false, 0), "{what}: {} failed", o.node);
    }
    assert_eq!(s.rows as usize, a.rows.len(), "{what}: rows");
    let mut forces: BTreeMap<String, u64> = BTreeMap::new();
    for r in &a.rows {
        let force = provenance(r).owning_force.clone();
        *forces.entry(force).or_default() += 1;
    }
    let said: BTreeMap<String, u64> = s.forces.iter().map(|f| (f.force.clone(), f.rows)).collect();
    assert_eq!(said, forces, "{what}: rows per owning force");
}

struct World {
    national: Channel,
    reference: Channel,
    data: Data,
}

impl World {
    /// Asks `q` of the reference node and nationally at node-1, whole and
    /// in pages of `page` rows (a timeline: cut at `page`), and checks the
    /// answers against each other and against `want`, the brute-force rows
    /// of the reads the nodes `up` hold.
    async fn check(&self, q: &Query, page: u32, want: &[Seen], up: [bool; 3], what: &str) {
        let ranked = matches!(q, Query::Vrm(_));

        // The reference: one node holding every read; its rows of the
        // reads the nodes up hold.
        let r = ask(&self.reference, q, 0, 0).await;
        assert!(r.summary.nodes.is_empty() && !r.summary.partial, "{what}");
        let all: Vec<Seen> = r.rows.iter().map(|x| seen(x, ranked)).collect();
        in_order(&all, &format!("{what}, reference"));
        let held = |s: &Seen| self.data.held(&s.force, &s.id, up);
        let reference: Vec<Seen> = all.into_iter().filter(held).collect();

        // The national answer, whole.
        let n = ask(&self.national, q, 0, 0).await;
        let national: Vec<Seen> = n.rows.iter().map(|x| seen(x, ranked)).collect();
        in_order(&national, what);
        let vs = |x: &str| format!("{what}: {x}");
        same_reads(&national, &reference, &vs("national vs one node"));
        same_reads(&national, want, &vs("national vs brute force"));
        same_reads(&reference, want, &vs("one node vs brute force"));
        check_summary(&n, up, what);
        assert_eq!(n.summary.total_rows as usize, want.len(), "{what}: total");
        assert!(!n.summary.truncated, "{what}: truncated");
        for row in &n.rows {
            let p = provenance(row);
            let g = self.data.read(&p.owning_force, &p.bof_read_id);
            let by = |&h: &usize| up[h] && NODES[h].0 == p.node;
            let id = (&p.owning_force, &p.bof_read_id, &p.node);
            assert!(g.holders.iter().any(by), "{what}: {id:?}: not held there");
            if ranked {
                let kind = row.r#match.as_ref().map(|m| m.kind);
                assert_eq!(kind, Some(pb::vrm_match::Kind::Wildcard as i32), "{what}");
            }
        }
        let whole = copies(&n.rows);

        if let Query::Timeline(_) = q {
            // Its first rows only: the whole answer's first rows, exactly.
            let cut = ask(&self.national, q, 0, page).await;
            let what = format!("{what}, first {page}");
            check_summary(&cut, up, &what);
            let upto = whole.len().min(page as usize);
            assert_eq!(copies(&cut.rows), whole[..upto], "{what}");
            assert_eq!(cut.summary.truncated, whole.len() > upto, "{what}");
            return;
        }

        // Page by page, following the offsets until a page says nothing
        // follows: the pages put together are the whole answer, exactly.
        let (mut paged, mut pages) = (Vec::new(), 0u32);
        loop {
            let a = ask(&self.national, q, pages * page, page).await;
            pages += 1;
            let what = format!("{what}, page {pages}");
            check_summary(&a, up, &what);
            paged.extend(copies(&a.rows));
            let total = a.summary.total_rows as usize;
            if !a.summary.truncated {
                assert!(a.rows.len() <= page as usize, "{what}: a long page");
                assert_eq!(total, want.len(), "{what}: total");
                break;
            }
            assert_eq!(a.rows.len(), page as usize, "{what}: a short page");
            // Known fault (session 15's note): before the last page,
            // `total_rows` subtracts only the copies of a read held twice
            // that the merge has passed, so it may count a read twice.
            assert!(total >= want.len(), "{what}: total {total} too low");
            assert!(paged.len() < want.len(), "{what}: paging does not end");
        }
        assert!(pages >= 3, "{what}: the answer should need several pages");
        assert_eq!(paged, whole, "{what}: the pages put together");
    }
}

async fn register_cameras(ch: Channel) {
    let camera = |(k, (lat, lon)): (usize, &(i32, i32))| pb::Camera {
        camera_id: format!("S{k}"),
        lat: f64::from(*lat) / 1e6,
        lon: f64::from(*lon) / 1e6,
        kind: pb::CameraKind::Fixed as i32,
        ..Default::default()
    };
    let cameras = SITES.iter().enumerate().map(camera).collect();
    let mut admin = pb::admin_client::AdminClient::new(ch);
    let r = admin
        .import_cameras(pb::ImportCamerasRequest { cameras })
        .await;
    let r = r.unwrap().into_inner();
    assert_eq!(r.stored as usize, SITES.len(), "{:?}", r.rejected);
}

/// `force`'s reads of `data` that `keep` selects, pushed by its BOF at `ch`.
async fn push(ch: Channel, data: &Data, force: usize, keep: impl Fn(&Gen) -> bool, what: &str) {
    let wire = |g: &Gen| {
        let gps = g.camera.starts_with("GPS").then_some(g.pos);
        pb::Read {
            read_id: g.id.clone(),
            vrm: g.raw.clone(),
            observed_at: Some(nadc_proto::to_pb_time(Timestamp::from_millis(g.millis))),
            camera_id: g.camera.clone(),
            lat: gps.map(|p| f64::from(p.0) / 1e6),
            lon: gps.map(|p| f64::from(p.1) / 1e6),
            confidence: Some(90.0),
            ..Default::default()
        }
    };
    let mine = data.reads.iter().filter(|&g| g.force == force && keep(g));
    let reads: Vec<pb::Read> = mine.map(wire).collect();
    if reads.is_empty() {
        return;
    }
    let n = reads.len() as u32;
    let batch = pb::ReadBatch {
        batch_seq: 1,
        force: String::new(),
        reads,
    };
    let r = pb::ingest_client::IngestClient::new(ch)
        .push_batch(batch)
        .await;
    let r = r.unwrap().into_inner();
    let stored = r.accepted == n && r.duplicates == 0;
    assert!(stored, "{what}: {:?}", r.rejected);
}

async fn one_seed(seed: u64) {
    let data = generate(seed);
    let mut c = Cluster::start().await;
    let mut h = Harness::start().await;
    for (i, (_, f)) in NODES.iter().enumerate() {
        // Each force's cameras on every node, its reads on the nodes
        // holding them, and all of them on the reference node.
        for node in 0..NODES.len() {
            register_cameras(c.bof(node, f).await).await;
            let on = |g: &Gen| g.holders.contains(&node);
            let what = format!("seed {seed}: {f} to node {node}");
            push(c.bof(node, f).await, &data, i, on, &what).await;
        }
        register_cameras(h.bof(f).await).await;
        let what = format!("seed {seed}: {f} to the reference");
        push(h.bof(f).await, &data, i, |_| true, &what).await;
    }
    let w = World {
        national: c.user(0, "alice").await,
        reference: h.user("alice").await,
        data,
    };
    let d = &w.data;
    let in_areas = |areas: &'static [(usize, f64, i64, i64)], up| {
        d.brute(up, false, move |g| {
            Some(areas_of(g, areas)).filter(|a| !a.is_empty())
        })
    };
    let geo = |up| in_areas(&AREAS[..2], up);
    let road = |up| in_areas(&AREAS[2..], up);
    let every = |up| d.brute(up, true, |_| Some(Vec::new()));
    let timeline = |up, k: usize| d.brute(up, false, |g| (g.vrm == d.pool[k]).then(Vec::new));
    let access = Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: "OP-NATIONAL".into(),
        ..Default::default()
    });
    let timeline_q = |vrm: &str| {
        let (vrm, access) = (vrm.to_string(), access.clone());
        Query::Timeline(pb::VrmTimelineRequest {
            vrm,
            access,
            ..Default::default()
        })
    };
    let pattern = "PX*".to_string();
    let vrm_q = Query::Vrm(pb::VrmSearchRequest {
        pattern,
        access: access.clone(),
        ..Default::default()
    });
    let t = now();
    let area = |&(place, radius_m, from_h, to_h): &(usize, f64, i64, i64)| pb::Area {
        lat: f64::from(PLACES[place].0) / 1e6,
        lon: f64::from(PLACES[place].1) / 1e6,
        radius_m,
        from: Some(nadc_proto::to_pb_time(t.plus_millis(-from_h * HOUR))),
        to: Some(nadc_proto::to_pb_time(t.plus_millis(-to_h * HOUR))),
        polygon: String::new(),
    };
    let geo_in = |areas: &[(usize, f64, i64, i64)]| {
        Query::Geo(pb::GeoSearchRequest {
            areas: areas.iter().map(area).collect(),
            access: access.clone(),
            ..Default::default()
        })
    };
    let (geo_q, road_q) = (geo_in(&AREAS[..2]), geo_in(&AREAS[2..]));

    // The data make the property bite: several pages; reads held twice,
    // in both areas, and twins; reads only node-3 holds, and reads it
    // holds with another node.
    let (geo_all, geo_left, all) = (geo(UP), geo(SURVIVORS), every(UP));
    let (road_all, road_left) = (road(UP), road(SURVIVORS));
    let holders = |s: &Seen| d.read(&s.force, &s.id).holders.clone();
    let twin = |s: &Seen| all.iter().any(|o| o.id == s.id && o.force != s.force);
    let facts = [
        geo_all.len() > 2 * GEO_PAGE as usize,
        geo_all.iter().any(|s| holders(s).len() == 2),
        geo_all.iter().any(|s| s.areas.len() == 2),
        geo_left.len() < geo_all.len(),
        geo_left.iter().any(|s| holders(s).contains(&2)),
        all.iter().any(twin),
        road_all.len() > 2 * GEO_PAGE as usize,
        road_all.iter().any(|s| !holders(s).contains(&0)),
        road_left.iter().any(|s| holders(s) == [1]),
    ];
    assert_eq!(facts, [true; 9], "seed {seed}: the data miss a case");

    for (k, vrm) in d.pool.iter().enumerate() {
        let (q, want) = (timeline_q(vrm), timeline(UP, k));
        let what = format!("seed {seed}: timeline {k}");
        assert!(want.len() > TIMELINE_CUT as usize, "{what}: too short");
        w.check(&q, TIMELINE_CUT, &want, UP, &what).await;
    }
    let what = format!("seed {seed}: VRM search");
    w.check(&vrm_q, VRM_PAGE, &all, UP, &what).await;
    let what = format!("seed {seed}: geographic search");
    w.check(&geo_q, GEO_PAGE, &geo_all, UP, &what).await;
    let what = format!("seed {seed}: geographic search on the road");
    w.check(&road_q, GEO_PAGE, &road_all, UP, &what).await;

    // node-3 stops, after the pages above: every answer is partial, names
    // it, and holds exactly what node-1 and node-2 hold.
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    let (q, want) = (timeline_q(&d.pool[0]), timeline(SURVIVORS, 0));
    let what = format!("seed {seed}, node-3 down: timeline 0");
    w.check(&q, TIMELINE_CUT, &want, SURVIVORS, &what).await;
    let what = format!("seed {seed}, node-3 down: VRM search");
    let want = every(SURVIVORS);
    w.check(&vrm_q, VRM_PAGE, &want, SURVIVORS, &what).await;
    let what = format!("seed {seed}, node-3 down: geographic search");
    w.check(&geo_q, GEO_PAGE, &geo_left, SURVIVORS, &what).await;
    let what = format!("seed {seed}, node-3 down: geographic search on the road");
    w.check(&road_q, GEO_PAGE, &road_left, SURVIVORS, &what)
        .await;

    drop(w);
    for node in c.nodes.iter_mut().filter_map(Option::take) {
        node.shutdown().await.unwrap();
    }
    h.node.take().unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_answer_is_the_answer_of_one_node_holding_every_read() {
    for seed in SEEDS {
        one_seed(seed).await;
    }
}
