//! Crime pattern analysis (issue 20, item 6) against a brute-force
//! reference written here (the oracle's geodesic distance, every read against every
//! incident): a vehicle planted near eight of ten incidents, others near
//! three, two or one, decoys just outside the radius or the window, and
//! random traffic near the incidents. Governance: both passes audited, the
//! reads registered under the case, every bad request refused and named.
//! Nationally over three nodes the answer equals the same analysis on one
//! node holding every read, and finds a vehicle near one incident in each
//! force that no node alone would.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use nadc_bof::pb;
use nadc_core::Timestamp;
use support::cluster::{Cluster, NODES};
use support::{Harness, case_access, now};
use tonic::Code;

const MIN: i64 = 60_000;

/// A small deterministic generator (the test's own, not nadc's).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The WGS84 geodesic distance in metres, by the oracle (Vincenty), not
/// by the code under test.
fn geodesic(a: (f64, f64), b: (f64, f64)) -> f64 {
    nadc_oracle::distance_m(a.0, a.1, b.0, b.1)
}

/// The point `d` metres from `p` at bearing `theta` (flat, near enough).
fn offset(p: (f64, f64), d: f64, theta: f64) -> (f64, f64) {
    let dlat = d * theta.cos() / 111_320.0;
    let dlon = d * theta.sin() / (111_320.0 * p.0.to_radians().cos());
    (p.0 + dlat, p.1 + dlon)
}

#[derive(Clone, Debug)]
struct Inc {
    at: i64,
    place: (f64, f64),
}

#[derive(Clone, Debug)]
struct R {
    id: String,
    vrm: String,
    place: (f64, f64),
    at: i64,
}

const RADIUS: f64 = 500.0;
const WINDOW_MIN: i64 = 30;

fn incidents(rng: &mut Lcg, n: usize, hours_back: f64) -> Vec<Inc> {
    (0..n)
        .map(|_| Inc {
            at: now().millis() - MIN * 60 - (rng.next() * hours_back * 60.0) as i64 * MIN,
            place: (51.40 + rng.next() * 0.12, -2.70 + rng.next() * 0.22),
        })
        .collect()
}

/// A read of `vrm` near incident `inc`: `d` metres away, `mins` minutes
/// (and a few seconds) off its time.
fn near(rng: &mut Lcg, id: String, vrm: &str, inc: &Inc, d: f64, mins: f64) -> R {
    R {
        id,
        vrm: vrm.into(),
        place: offset(inc.place, d, rng.next() * std::f64::consts::TAU),
        at: inc.at + (mins * MIN as f64) as i64,
    }
}

/// The planted series: incidents and the reads around them.
fn planted(seed: u64) -> (Vec<Inc>, Vec<R>) {
    let mut rng = Lcg(seed);
    let inc = incidents(&mut rng, 10, 6.0 * 24.0);
    let mut reads = Vec::new();
    let mut id = 0;
    let mut next = || {
        id += 1;
        format!("r{id}")
    };
    let plant = |rng: &mut Lcg,
                 reads: &mut Vec<R>,
                 next: &mut dyn FnMut() -> String,
                 vrm: &str,
                 which: &[usize]| {
        for i in which {
            let d = 50.0 + rng.next() * 400.0;
            let m = (rng.next() - 0.5) * 50.0;
            reads.push(near(rng, next(), vrm, &inc[*i], d, m));
        }
    };
    plant(
        &mut rng,
        &mut reads,
        &mut next,
        "PL4NT3D",
        &[0, 1, 2, 3, 4, 5, 6, 7],
    );
    // A second read near incident 3, nearer than the first.
    reads.push(near(&mut rng, next(), "PL4NT3D", &inc[3], 10.0, 2.0));
    plant(&mut rng, &mut reads, &mut next, "ASS0C1", &[0, 1, 2]);
    plant(&mut rng, &mut reads, &mut next, "C0MMUT3", &[4, 5]);
    plant(&mut rng, &mut reads, &mut next, "NEAR0NE", &[9]);
    for (i, x) in inc.iter().enumerate().take(6) {
        // Just outside the radius, in time; just outside the window, in place.
        reads.push(near(&mut rng, next(), "FARAWAY", x, 530.0, 5.0));
        reads.push(near(
            &mut rng,
            next(),
            "LATE1",
            x,
            100.0,
            if i % 2 == 0 { 31.0 } else { -31.0 },
        ));
    }
    // Traffic near the incidents: anywhere within 900 m and an hour and a
    // half, away from the exact edges.
    for v in 0..40 {
        let vrm = format!("TR{v:02}AFC");
        for _ in 0..4 {
            let i = (rng.next() * inc.len() as f64) as usize;
            let mut d = rng.next() * 900.0;
            if (480.0..520.0).contains(&d) {
                d += 60.0;
            }
            let mut m = (rng.next() - 0.5) * 180.0;
            if (m.abs() - 30.0).abs() < 0.5 {
                m += 1.0;
            }
            reads.push(near(&mut rng, next(), &vrm, &inc[i], d, m));
        }
    }
    // Traffic nowhere near.
    for k in 0..200 {
        reads.push(R {
            id: next(),
            vrm: format!("BG{:03}XX", k % 50),
            place: (52.0 + rng.next() * 0.2, -1.5 + rng.next() * 0.2),
            at: now().millis() - (rng.next() * 6.0 * 24.0 * 60.0) as i64 * MIN,
        });
    }
    (inc, reads)
}

/// The reference: per vehicle near at least `k` incidents, the incidents
/// with the nearest distance there, and the ids of its reads near any;
/// most incidents first, then by VRM.
type Expected = Vec<(String, Vec<(u32, f64)>, BTreeSet<String>)>;

fn reference(inc: &[Inc], reads: &[R], k: usize) -> Expected {
    let mut by: BTreeMap<&str, (BTreeMap<u32, f64>, BTreeSet<String>)> = BTreeMap::new();
    for r in reads {
        for (i, x) in inc.iter().enumerate() {
            let d = geodesic(r.place, x.place);
            if d <= RADIUS && (r.at - x.at).abs() <= WINDOW_MIN * MIN {
                let e = by.entry(&r.vrm).or_default();
                let best = e.0.entry(i as u32).or_insert(d);
                *best = best.min(d);
                e.1.insert(r.id.clone());
            }
        }
    }
    let mut out: Expected = by
        .into_iter()
        .filter(|(_, (i, _))| i.len() >= k)
        .map(|(v, (i, ids))| (v.to_string(), i.into_iter().collect(), ids))
        .collect();
    out.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The answer in the reference's shape.
fn shape(r: &pb::PatternResponse) -> Expected {
    r.vehicles
        .iter()
        .map(|v| {
            (
                v.vrm.clone(),
                v.near.iter().map(|n| (n.incident, n.distance_m)).collect(),
                v.read_indexes
                    .iter()
                    .map(|i| r.reads[*i as usize].provenance.clone().unwrap().bof_read_id)
                    .collect(),
            )
        })
        .collect()
}

fn assert_same(got: &Expected, want: &Expected) {
    let names = |e: &Expected| e.iter().map(|v| v.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want));
    for (g, w) in got.iter().zip(want) {
        let gi: Vec<u32> = g.1.iter().map(|x| x.0).collect();
        let wi: Vec<u32> = w.1.iter().map(|x| x.0).collect();
        assert_eq!(gi, wi, "{}", g.0);
        for (a, b) in g.1.iter().zip(&w.1) {
            assert!(
                (a.1 - b.1).abs() < 0.5,
                "{}: {} m against {} m",
                g.0,
                a.1,
                b.1
            );
        }
        assert_eq!(g.2, w.2, "{}", g.0);
    }
}

fn pb_read(r: &R) -> pb::Read {
    pb::Read {
        read_id: r.id.clone(),
        vrm: r.vrm.clone(),
        observed_at: Some(nadc_proto::to_pb_time(Timestamp::from_millis(r.at))),
        camera_id: "GPS-1".into(),
        lat: Some(r.place.0),
        lon: Some(r.place.1),
        ..Default::default()
    }
}

fn pb_incidents(inc: &[Inc]) -> Vec<pb::Incident> {
    inc.iter()
        .enumerate()
        .map(|(i, x)| pb::Incident {
            reference: format!("CR/{i}"),
            kind: "burglary".into(),
            at: Some(nadc_proto::to_pb_time(Timestamp::from_millis(x.at))),
            lat: x.place.0,
            lon: x.place.1,
        })
        .collect()
}

fn request(inc: &[Inc], case: &str) -> pb::PatternRequest {
    pb::PatternRequest {
        access: case_access(case),
        incidents: pb_incidents(inc),
        radius_m: RADIUS,
        window_minutes: WINDOW_MIN as u32,
        ..Default::default()
    }
}

async fn push(ch: tonic::transport::Channel, reads: &[R]) {
    for chunk in reads.chunks(500) {
        let r = pb::ingest_client::IngestClient::new(ch.clone())
            .push_batch(support::batch(chunk.iter().map(pb_read).collect()))
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }
}

async fn audit(h: &Harness, action: &str) -> Vec<pb::AuditRecord> {
    h.audit_entries(
        "audrey",
        pb::AuditQuery {
            action: action.into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .filter(|e| e.action == action)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vehicles_near_k_incidents_are_exactly_the_brute_force_ones() {
    let h = Harness::start().await;
    let (inc, reads) = planted(7);
    push(h.bof("AVON").await, &reads).await;
    let mut client = pb::analysis_client::AnalysisClient::new(h.user("alice").await);
    let got = client
        .crime_pattern(request(&inc, "OP-PATTERN"))
        .await
        .unwrap()
        .into_inner();
    let want = reference(&inc, &reads, 2);
    assert_same(&shape(&got), &want);
    // The planted vehicle leads, near eight; the decoys are absent.
    assert_eq!(got.vehicles[0].vrm, "PL4NT3D");
    assert_eq!(got.vehicles[0].near.len(), 8);
    let names: BTreeSet<&str> = got.vehicles.iter().map(|v| v.vrm.as_str()).collect();
    for absent in ["FARAWAY", "LATE1", "NEAR0NE"] {
        assert!(!names.contains(absent), "{absent}");
    }
    assert!(names.contains("ASS0C1") && names.contains("C0MMUT3"));
    // Its nearest read at incident 3 is the one planted 10 m away.
    let at3 = got.vehicles[0]
        .near
        .iter()
        .find(|n| n.incident == 3)
        .unwrap();
    assert!(at3.distance_m < 11.0, "{at3:?}");
    assert!((at3.offset_s - 120.0).abs() < 1.0, "{at3:?}");
    assert_eq!(got.qualified as usize, want.len());
    assert!(!got.truncated);
    assert_eq!(
        got.vehicles_near_any as usize,
        reference(&inc, &reads, 1).len()
    );
    // Only the reads behind the vehicles are returned.
    let behind: usize = want.iter().map(|v| v.2.len()).sum();
    assert_eq!(got.reads.len(), behind);
    assert_eq!(got.caveats.len(), 3);

    // K = 3, and a limit of 2: the strongest two, the rest counted.
    let mut k3 = request(&inc, "OP-PATTERN");
    k3.min_incidents = 3;
    k3.limit = 2;
    let top = client.crime_pattern(k3).await.unwrap().into_inner();
    let want3 = reference(&inc, &reads, 3);
    assert_same(&shape(&top), &want3[..2].to_vec());
    assert_eq!(top.qualified as usize, want3.len());
    assert_eq!(top.truncated, want3.len() > 2);

    // Named vehicles only.
    let mut named = request(&inc, "OP-PATTERN");
    named.vrms = vec!["c0mmut3".into(), "NEAR0NE".into()];
    let only = client.crime_pattern(named).await.unwrap().into_inner();
    let names: Vec<&str> = only.vehicles.iter().map(|v| v.vrm.as_str()).collect();
    assert_eq!(names, ["C0MMUT3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_passes_are_audited_and_the_reads_registered_under_the_case() {
    let h = Harness::start().await;
    let (inc, reads) = planted(11);
    push(h.bof("AVON").await, &reads).await;
    let got = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .crime_pattern(request(&inc, "OP-SERIES"))
        .await
        .unwrap()
        .into_inner();
    assert!(!got.reads.is_empty());
    let entries = audit(&h, "search.pattern").await;
    type Shown = (String, String, Vec<(String, u64)>);
    let shown: Vec<Shown> = entries
        .iter()
        .map(|e| {
            (
                e.outcome.clone(),
                e.case_ref.clone(),
                e.returned
                    .iter()
                    .map(|f| (f.force.clone(), f.rows))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("ok".to_string(), "OP-SERIES".to_string(), vec![]),
            (
                "ok".to_string(),
                "OP-SERIES".to_string(),
                vec![("AVON".to_string(), got.reads.len() as u64)]
            ),
        ]
    );
    // No VRM is in the audited query.
    for e in &entries {
        assert!(!e.query.contains("PL4NT3D"), "{}", e.query);
    }
    let schedule = pb::disclosure_client::DisclosureClient::new(h.user("dora").await)
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-SERIES".into(),
            case_force: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let registered: BTreeSet<String> = schedule
        .agencies
        .iter()
        .flat_map(|a| a.reads.iter().map(|r| r.bof_read_id.clone()))
        .collect();
    let returned: BTreeSet<String> = got
        .reads
        .iter()
        .map(|r| r.provenance.clone().unwrap().bof_read_id)
        .collect();
    assert_eq!(registered, returned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_and_unlawful_requests_are_refused_naming_what_is_wrong() {
    let h = Harness::start().await;
    let (inc, reads) = planted(3);
    push(h.bof("AVON").await, &reads).await;
    let ask = async |user: &str, q: pb::PatternRequest| {
        pb::analysis_client::AnalysisClient::new(h.user(user).await)
            .crime_pattern(q)
            .await
            .map(drop)
            .unwrap_err()
    };
    let base = || request(&inc, "OP-BAD");
    let cases: Vec<(&str, pb::PatternRequest, Code, &str)> = vec![
        ("nora", base(), Code::PermissionDenied, ""),
        (
            "alice",
            pb::PatternRequest {
                access: None,
                ..base()
            },
            Code::InvalidArgument,
            "purpose",
        ),
        (
            "alice",
            pb::PatternRequest {
                incidents: base().incidents[..1].to_vec(),
                ..base()
            },
            Code::InvalidArgument,
            "incidents: 1 given",
        ),
        (
            "alice",
            pb::PatternRequest {
                min_incidents: 1,
                ..base()
            },
            Code::InvalidArgument,
            "min_incidents 1",
        ),
        (
            "alice",
            pb::PatternRequest {
                min_incidents: 11,
                ..base()
            },
            Code::InvalidArgument,
            "more than the 10 incidents",
        ),
        (
            "alice",
            pb::PatternRequest {
                window_minutes: 721,
                ..base()
            },
            Code::InvalidArgument,
            "window_minutes 721",
        ),
        (
            "alice",
            pb::PatternRequest {
                radius_m: 50_000.0,
                ..base()
            },
            Code::FailedPrecondition,
            "radius_m",
        ),
        (
            "alice",
            pb::PatternRequest {
                tally_only: true,
                ..base()
            },
            Code::InvalidArgument,
            "between nodes",
        ),
        // A user posing as a relaying node (to get the unaudited tally, or
        // to skip the case check) is refused.
        (
            "alice",
            pb::PatternRequest {
                tally_only: true,
                on_behalf_of: Some(pb::OnBehalfOf {
                    user: "alice".into(),
                    force: "AVON".into(),
                    roles: vec!["analyst".into()],
                    via_node: "node-2".into(),
                }),
                ..base()
            },
            Code::PermissionDenied,
            "on_behalf_of",
        ),
        (
            "alice",
            pb::PatternRequest {
                incidents: {
                    let mut v = base().incidents;
                    v[4].reference = "CR/\u{202e}4".into();
                    v
                },
                ..base()
            },
            Code::InvalidArgument,
            "incidents[4]: reference",
        ),
        (
            "alice",
            pb::PatternRequest {
                incidents: {
                    let mut v = base().incidents;
                    v[2].lat = 91.0;
                    v
                },
                ..base()
            },
            Code::InvalidArgument,
            "incidents[2]",
        ),
        (
            "alice",
            pb::PatternRequest {
                incidents: {
                    let mut v = base().incidents;
                    v[6].at = Some(nadc_proto::to_pb_time(now().minus_days(400)));
                    v
                },
                ..base()
            },
            Code::PermissionDenied,
            "incidents[6]",
        ),
        (
            "alice",
            pb::PatternRequest {
                incidents: std::iter::repeat_n(base().incidents[0].clone(), 501).collect(),
                ..base()
            },
            Code::InvalidArgument,
            "501 given",
        ),
    ];
    let n = cases.len();
    for (user, q, code, words) in cases {
        let e = ask(user, q).await;
        assert_eq!(e.code(), code, "{words}: {e:?}");
        assert!(e.message().contains(words), "{words}: {}", e.message());
    }
    // Every refusal is audited, and nothing was disclosed.
    let refused = audit(&h, "search.pattern").await;
    assert_eq!(refused.len(), n, "{refused:?}");
    assert!(refused.iter().all(|e| e.outcome.starts_with("refused")));
    assert!(refused.iter().all(|e| e.returned.is_empty()));
}

/// The national series: incidents anywhere, and each node's reads near
/// them (node i's are its force's), with one vehicle near one incident in
/// each force.
fn national_series() -> (Vec<Inc>, Vec<Vec<R>>) {
    let (inc, reads) = planted(23);
    let mut by_node: Vec<Vec<R>> = vec![Vec::new(); 3];
    for (k, r) in reads.into_iter().enumerate() {
        by_node[k % 3].push(r);
    }
    let mut rng = Lcg(99);
    for (i, node) in by_node.iter_mut().enumerate() {
        node.push(near(
            &mut rng,
            format!("x{i}"),
            "TR1F0RC",
            &inc[i],
            200.0,
            4.0,
        ));
    }
    (inc, by_node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn national_pattern_equals_one_node_holding_every_read() {
    let (inc, by_node) = national_series();
    let mut c = Cluster::start().await;
    for (i, (_, f)) in NODES.iter().enumerate() {
        push(c.bof(i, f).await, &by_node[i]).await;
    }
    let mut q = request(&inc, "OP-NATIONAL");
    q.min_incidents = 3;
    let national = pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
        .crime_pattern(q.clone())
        .await
        .unwrap()
        .into_inner();
    // One node holding every read, each pushed by its own force.
    let h = Harness::start().await;
    for (i, (_, f)) in NODES.iter().enumerate() {
        push(h.bof(f).await, &by_node[i]).await;
    }
    let whole = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .crime_pattern(q.clone())
        .await
        .unwrap()
        .into_inner();
    let all: Vec<R> = by_node.iter().flatten().cloned().collect();
    let want = reference(&inc, &all, 3);
    assert_same(&shape(&national), &want);
    assert_same(&shape(&whole), &want);
    let provenance = |r: &pb::PatternResponse| -> Vec<(String, String)> {
        r.reads
            .iter()
            .map(|x| {
                let p = x.provenance.clone().unwrap();
                (p.owning_force, p.bof_read_id)
            })
            .collect()
    };
    assert_eq!(provenance(&national), provenance(&whole));
    assert_eq!(national.qualified, whole.qualified);
    assert_eq!(national.vehicles_near_any, whole.vehicles_near_any);
    // The vehicle near one incident in each force is found nationally ...
    let tri = national
        .vehicles
        .iter()
        .find(|v| v.vrm == "TR1F0RC")
        .unwrap();
    assert_eq!(
        tri.near.iter().map(|n| n.incident).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let forces: BTreeSet<String> = tri
        .read_indexes
        .iter()
        .map(|i| {
            national.reads[*i as usize]
                .provenance
                .clone()
                .unwrap()
                .owning_force
        })
        .collect();
    assert_eq!(forces.len(), 3);
    // ... and by no node alone.
    let mut local = q.clone();
    local.scope = pb::Scope::Local as i32;
    let alone = pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
        .crime_pattern(local)
        .await
        .unwrap()
        .into_inner();
    assert!(alone.vehicles.iter().all(|v| v.vrm != "TR1F0RC"));
    assert!(!national.partial);
    assert_eq!(national.nodes.len(), 3);

    // A node down: the answer says so, naming it.
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    let partial = pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
        .crime_pattern(q)
        .await
        .unwrap()
        .into_inner();
    assert!(partial.partial);
    let down = partial.nodes.iter().find(|n| n.node == "node-3").unwrap();
    assert!(!down.ok && !down.error.is_empty(), "{down:?}");
    assert!(partial.vehicles.iter().all(|v| v.vrm != "TR1F0RC"));
}
