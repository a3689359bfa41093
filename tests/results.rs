//! Results analysis and the transparency report (issue 20, item 9),
//! against counts made here from what the test did: two lists, their hits
//! over two months, the verifications and outcomes operators recorded, the
//! searches users made (one refused), a hold, and a retention pass a year
//! on. Small counts are suppressed; nothing names a VRM.

mod support;

use std::collections::BTreeMap;

use nadc_bof::pb;
use support::{Harness, batch, case_access, now};

const DAY: i64 = 86_400_000;

fn entry(vrm: &str) -> pb::HotlistEntry {
    pb::HotlistEntry {
        vrm: vrm.into(),
        reason: "wanted".into(),
        intel_ref: "INT/1".into(),
        action: pb::Action::Stop as i32,
        expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(30 * DAY))),
        ..Default::default()
    }
}

async fn make_list(h: &Harness, name: &str, vrms: &[&str]) {
    let mut c = pb::hotlists_client::HotlistsClient::new(h.user("harry").await);
    c.create_hotlist(pb::CreateHotlistRequest {
        name: name.into(),
        purpose: "serious crime".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    c.add_entries(pb::AddEntriesRequest {
        list: Some(pb::HotlistRef {
            owner: String::new(),
            name: name.into(),
        }),
        entries: vrms.iter().map(|v| entry(v)).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// A read of `vrm` by camera C1, `days` days and `k` minutes before now.
fn read(id: &str, vrm: &str, days: i64, k: i64) -> pb::Read {
    pb::Read {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(nadc_proto::to_pb_time(
            now().plus_millis(-days * DAY - k * 60_000),
        )),
        camera_id: "C1".into(),
        ..Default::default()
    }
}

/// October (35 days before now, 2026-10-20) and November (now's month).
const OCT: i64 = 35;
const NOV: i64 = 2;

async fn push(h: &Harness, force: &str, reads: Vec<pb::Read>) {
    let r = pb::ingest_client::IngestClient::new(h.bof(force).await)
        .push_batch(batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

/// Every hit logged, by the read's id: its position.
async fn hits(h: &Harness) -> BTreeMap<String, u64> {
    let mut s = pb::alerts_client::AlertsClient::new(h.user("alice").await)
        .watch(pb::WatchRequest {
            history_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = BTreeMap::new();
    while let Some(e) = s.message().await.unwrap() {
        out.insert(e.read.unwrap().provenance.unwrap().bof_read_id, e.position);
    }
    out
}

async fn verify(h: &Harness, position: u64, state: pb::Verification, outcome: pb::HitOutcome) {
    pb::alerts_client::AlertsClient::new(h.user("alice").await)
        .verify(pb::VerifyRequest {
            position,
            state: state as i32,
            outcome: outcome as i32,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// `user`'s timeline of `vrm` under `case`: the rows it returned.
async fn timeline(h: &Harness, user: &str, vrm: &str, case: &str) -> u64 {
    let mut s = pb::search_client::SearchClient::new(h.user(user).await)
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: vrm.into(),
            access: case_access(case),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = 0;
    while let Some(c) = s.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            rows += b.rows.len() as u64;
        }
    }
    rows
}

fn p(v: u64) -> Option<pb::PublishedCount> {
    Some(pb::PublishedCount {
        value: v,
        suppressed: false,
    })
}

fn hidden() -> Option<pb::PublishedCount> {
    Some(pb::PublishedCount {
        value: 0,
        suppressed: true,
    })
}

async fn transparency(h: &Harness, from: &str, to: &str) -> pb::TransparencyResponse {
    pb::analysis_client::AnalysisClient::new(h.user("nora").await)
        .transparency(pb::TransparencyRequest {
            from_month: from.into(),
            to_month: to.into(),
            min_count: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn row<'a>(r: &'a pb::TransparencyResponse, force: &str, month: &str) -> &'a pb::TransparencyRow {
    r.rows
        .iter()
        .find(|x| x.force == force && x.month == month)
        .unwrap_or_else(|| panic!("no row for {force} {month}: {:?}", r.rows))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_and_the_transparency_report_count_what_happened() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    h.cameras("KENT", 1).await;
    make_list(&h, "wanted", &["WA1NTED", "WA2NTED"]).await;
    make_list(&h, "stolen", &["ST0LEN1"]).await;
    // AVON: WA1NTED 3 in October and 3 in November, WA2NTED 2 and
    // ST0LEN1 5 in November, other traffic 5 in October and 7 in
    // November; KENT: 9 in November.
    let mut avon = Vec::new();
    for k in 0..3 {
        avon.push(read(&format!("w1o{k}"), "WA1NTED", OCT, k));
        avon.push(read(&format!("w1n{k}"), "WA1NTED", NOV, k));
    }
    for k in 0..2 {
        avon.push(read(&format!("w2n{k}"), "WA2NTED", NOV, k));
    }
    for k in 0..5 {
        avon.push(read(&format!("sn{k}"), "ST0LEN1", NOV, k));
        avon.push(read(&format!("bo{k}"), &format!("BG{k}OCT"), OCT, k));
    }
    for k in 0..7 {
        avon.push(read(&format!("bn{k}"), &format!("BG{k}NOV"), NOV, k));
    }
    push(&h, "AVON", avon).await;
    push(
        &h,
        "KENT",
        (0..9)
            .map(|k| read(&format!("kn{k}"), &format!("KE{k}NTX"), NOV, k))
            .collect(),
    )
    .await;

    // Verifications: October's WA1NTED hits arrested, rejected, left;
    // November's stopped twice and no action; ST0LEN1's all not located.
    let at = hits(&h).await;
    assert_eq!(at.len(), 13);
    use pb::HitOutcome as O;
    use pb::Verification as V;
    for (id, state, outcome) in [
        ("w1o0", V::Confirmed, O::Arrested),
        ("w1o1", V::Rejected, O::Unspecified),
        ("w1n0", V::Confirmed, O::Stopped),
        ("w1n1", V::Confirmed, O::Stopped),
        ("w1n2", V::Confirmed, O::NoAction),
    ] {
        verify(&h, at[id], state, outcome).await;
    }
    for k in 0..5 {
        verify(&h, at[&format!("sn{k}")], V::Confirmed, O::NotLocated).await;
    }

    // Searches: alice's five timelines under OP-1 and one refused (a bad
    // VRM); kim's (KENT) two under OP-K.
    let mut rows = 0;
    for vrm in ["WA1NTED", "WA2NTED", "ST0LEN1", "BG1NOV", "BG2OCT"] {
        rows += timeline(&h, "alice", vrm, "OP-1").await;
    }
    let refused = pb::search_client::SearchClient::new(h.user("alice").await)
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: "NOT A PLATE!".into(),
            access: case_access("OP-1"),
            ..Default::default()
        })
        .await;
    assert!(refused.is_err());
    for vrm in ["KE1NTX", "KE2NTX"] {
        timeline(&h, "kim", vrm, "OP-K").await;
    }
    // A purpose that is not one: refused, and never repeated in a report
    // (it names a plate here).
    let bogus = pb::search_client::SearchClient::new(h.user("alice").await)
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: "WA1NTED".into(),
            access: Some(pb::AccessContext {
                purpose: "WA1NTED".into(),
                case_ref: "OP-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert!(bogus.is_err());

    let results = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .results(pb::ResultsRequest {
            access: case_access("OP-RESULTS"),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-60 * DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            by_month: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(results.force, "AVON");
    // (list, month, reads checked, hits, confirmed, rejected, unverified,
    // stopped, arrested, no action, not located)
    let got: Vec<_> = results
        .lists
        .iter()
        .map(|l| {
            (
                l.list.as_str(),
                l.month.as_str(),
                [
                    l.reads_checked,
                    l.hits,
                    l.confirmed,
                    l.rejected,
                    l.unverified,
                    l.stopped,
                    l.arrested,
                    l.no_action,
                    l.not_located,
                ],
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("stolen", "2026-10", [8, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("stolen", "2026-11", [26, 5, 5, 0, 0, 0, 0, 0, 5]),
            ("wanted", "2026-10", [8, 3, 1, 1, 1, 0, 1, 0, 0]),
            ("wanted", "2026-11", [26, 5, 3, 0, 2, 2, 0, 1, 0]),
        ]
    );
    let wanted_nov = &results.lists[3];
    assert!((wanted_nov.hits_per_million - 5.0 * 1e6 / 26.0).abs() < 1e-6);
    let searches: Vec<_> = results
        .searches
        .iter()
        .map(|s| {
            (
                s.case_ref.as_str(),
                s.purpose.as_str(),
                s.month.as_str(),
                s.searches,
                s.refused,
                s.rows,
            )
        })
        .collect();
    // The refused one under a purpose that is not one counts as "other".
    assert_eq!(
        searches,
        [
            ("OP-1", "other", "2026-11", 0, 1, 0),
            ("OP-1", "serious-crime", "2026-11", 5, 1, rows)
        ]
    );
    assert_eq!(results.reads, 25);
    // Another force's user sees their own force's results only: no list of
    // AVON's, none of AVON's searches, none of its reads.
    let kents = pb::analysis_client::AnalysisClient::new(h.user("kim").await)
        .results(pb::ResultsRequest {
            access: case_access("OP-K"),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-60 * DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kents.force, "KENT");
    assert!(kents.lists.is_empty(), "{:?}", kents.lists);
    assert!(
        kents.searches.iter().all(|s| s.case_ref == "OP-K"),
        "{:?}",
        kents.searches
    );
    assert_eq!(kents.reads, 9);

    // The public report: alice's five searches and her results analysis
    // are six; kim's two are suppressed, as is every count under five.
    // Only closed months are reported: the report is asked in December.
    let early = pb::analysis_client::AnalysisClient::new(h.user("nora").await)
        .transparency(pb::TransparencyRequest {
            from_month: "2026-10".into(),
            to_month: "2026-11".into(),
            min_count: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        early.message().contains("closed months"),
        "{}",
        early.message()
    );
    h.clock.set(now().plus_millis(8 * DAY));
    let r = transparency(&h, "2026-10", "2026-11").await;
    assert_eq!(r.min_count, 5);
    assert!(!r.notes.is_empty());
    let avon_oct = row(&r, "AVON", "2026-10");
    assert_eq!(avon_oct.reads_held, p(8));
    assert_eq!(avon_oct.hits, hidden());
    assert_eq!(avon_oct.confirmed, hidden());
    let avon_nov = row(&r, "AVON", "2026-11");
    assert_eq!(avon_nov.reads_held, p(17));
    assert_eq!(avon_nov.hits, p(10));
    assert_eq!(avon_nov.confirmed, p(8));
    assert_eq!(avon_nov.rejected, p(0));
    assert_eq!(avon_nov.stopped, hidden());
    assert_eq!(avon_nov.not_located, p(5));
    assert_eq!(
        avon_nov.searches,
        [pb::PurposeCount {
            purpose: "serious-crime".into(),
            searches: p(6),
        }]
    );
    let kent_nov = row(&r, "KENT", "2026-11");
    assert_eq!(kent_nov.reads_held, p(9));
    assert_eq!(kent_nov.searches[0].searches, hidden());
    // Nothing in it names a vehicle.
    let text = format!("{r:?}");
    for vrm in ["WA1NTED", "ST0LEN1", "KE1NTX"] {
        assert!(!text.contains(vrm));
    }

    // A user posing as a relaying node still gets suppressed counts: only
    // a node's certificate gets a peer's raw aggregates.
    let posing = pb::analysis_client::AnalysisClient::new(h.user("nora").await)
        .transparency(pb::TransparencyRequest {
            from_month: "2026-10".into(),
            to_month: "2026-11".into(),
            min_count: 5,
            scope: pb::Scope::Local as i32,
            on_behalf_of: Some(pb::OnBehalfOf {
                user: "nora".into(),
                force: "AVON".into(),
                roles: vec![],
                via_node: "node-9".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(row(&posing, "AVON", "2026-10").hits, hidden());

    // A bad month or threshold is refused, naming it.
    let e = pb::analysis_client::AnalysisClient::new(h.user("nora").await)
        .transparency(pb::TransparencyRequest {
            from_month: "2026-11".into(),
            to_month: "2026-13".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("to_month"), "{}", e.message());
    let e = pb::analysis_client::AnalysisClient::new(h.user("nora").await)
        .transparency(pb::TransparencyRequest {
            from_month: "2026-11".into(),
            to_month: "2026-11".into(),
            min_count: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("min_count 2"), "{}", e.message());
    // Results need a purpose and case, like any analysis.
    let e = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .results(pb::ResultsRequest {
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_and_holds_are_reported_by_force_and_month() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    h.cameras("KENT", 1).await;
    push(
        &h,
        "AVON",
        (0..12)
            .map(|k| read(&format!("a{k}"), "HE1LDXX", NOV, k))
            .chain((0..8).map(|k| read(&format!("b{k}"), &format!("OT{k}HER"), NOV, k)))
            .collect(),
    )
    .await;
    push(
        &h,
        "KENT",
        (0..6)
            .map(|k| read(&format!("k{k}"), &format!("KE{k}NTX"), NOV, k))
            .collect(),
    )
    .await;
    // Dora holds the twelve reads of HE1LDXX for OP-HOLD.
    let rows = h.case_rows("HE1LDXX", "OP-HOLD").await;
    assert_eq!(rows.len(), 12);
    pb::holds_client::HoldsClient::new(h.user("dora").await)
        .place(pb::PlaceHoldRequest {
            case_ref: "OP-HOLD".into(),
            reads: rows.iter().map(support::held_read).collect(),
            reason: "evidence".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A year and a few days on, retention deletes what is not held.
    h.clock.set(now().plus_millis(367 * DAY));
    pb::admin_client::AdminClient::new(h.user("carol").await)
        .run_retention(pb::RunRetentionRequest {})
        .await
        .unwrap();
    h.clock.set(now().plus_millis(377 * DAY));
    let r = transparency(&h, "2026-11", "2027-11").await;
    let avon_nov = row(&r, "AVON", "2026-11");
    assert_eq!(avon_nov.reads_held, p(12));
    assert_eq!(avon_nov.holds_placed, hidden());
    let deleted: BTreeMap<&str, Option<pb::PublishedCount>> = r
        .rows
        .iter()
        .filter(|x| x.month == "2027-11")
        .map(|x| (x.force.as_str(), x.deleted_by_retention))
        .collect();
    assert_eq!(deleted, BTreeMap::from([("AVON", p(8)), ("KENT", p(6))]));
    assert!(
        r.rows
            .iter()
            .all(|x| x.force != "KENT" || x.month != "2026-11" || x.reads_held == p(0))
    );
    assert_eq!(
        r.holds,
        [pb::HoldsInForce {
            force: "AVON".into(),
            cases: hidden(),
            reads: p(12),
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nationally_each_search_counts_once_and_every_nodes_reads_are_summed() {
    use support::cluster::{Cluster, NODES};
    let c = Cluster::start().await;
    for (i, (_, f)) in NODES.iter().enumerate() {
        let reads: Vec<pb::Read> = (0..(4 + 2 * i as i64))
            .map(|k| pb::Read {
                lat: Some(51.45),
                lon: Some(-2.58),
                camera_id: "GPS".into(),
                ..read(&format!("{f}{k}"), "NA71ONL", OCT, k)
            })
            .collect();
        let r = pb::ingest_client::IngestClient::new(c.bof(i, f).await)
            .push_batch(batch(reads))
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }
    // Six national timelines at node-1: each runs on every node.
    for _ in 0..6 {
        let mut s = pb::search_client::SearchClient::new(c.user(0, "alice").await)
            .vrm_timeline(pb::VrmTimelineRequest {
                vrm: "NA71ONL".into(),
                access: case_access("OP-NAT"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        while s.message().await.unwrap().is_some() {}
    }
    let results = pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
        .results(pb::ResultsRequest {
            access: case_access("OP-RESULTS"),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-10 * DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let searches: Vec<(&str, u64, u64)> = results
        .searches
        .iter()
        .map(|s| (s.case_ref.as_str(), s.searches, s.rows))
        .collect();
    assert_eq!(searches, [("OP-NAT", 6, 6 * (4 + 6 + 8))]);
    assert_eq!(results.nodes.len(), 3);
    assert!(!results.partial);
    let r = pb::analysis_client::AnalysisClient::new(c.user(0, "kate").await)
        .transparency(pb::TransparencyRequest {
            from_month: "2026-10".into(),
            to_month: "2026-10".into(),
            min_count: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let held: BTreeMap<&str, Option<pb::PublishedCount>> = r
        .rows
        .iter()
        .map(|x| (x.force.as_str(), x.reads_held))
        .collect();
    assert_eq!(
        held,
        BTreeMap::from([("AVON", hidden()), ("KENT", p(6)), ("MET", p(8))])
    );
    assert_eq!(r.nodes.len(), 3);
    assert!(!r.partial);
    // A node down: nothing is published (a partial report's difference
    // from a whole one would give that node's small counts).
    let mut c = c;
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    let e = pb::analysis_client::AnalysisClient::new(c.user(0, "kate").await)
        .transparency(pb::TransparencyRequest {
            from_month: "2026-10".into(),
            to_month: "2026-10".into(),
            min_count: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("whole or not at all"),
        "{}",
        e.message()
    );
}
