//! Retention and legal holds end to end: reads past their force's
//! retention are deleted from every index and the records (with per-force
//! periods), a read under a legal hold survives until the hold is released
//! and is reachable only through its case, and each pass is audited with
//! counts per force per day. Time is the node's injected clock.

mod support;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use nadc_bof::pb;
use nadc_core::vrm_match::ConfusableGroups;
use nadc_store::Store;
use support::{Harness, batch, case_access, case_read_ref, held_read, now, read};

const DAY: i64 = 86_400_000;

async fn rows(
    mut s: tonic::Streaming<pb::SearchChunk>,
) -> (Vec<pb::ReadRow>, Option<pb::SearchSummary>) {
    let (mut rows, mut summary) = (Vec::new(), None);
    while let Some(c) = s.message().await.unwrap() {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => rows.extend(b.rows),
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    (rows, summary)
}

async fn held(h: &Harness, case: &str) -> Vec<String> {
    let mut c = pb::search_client::SearchClient::new(h.user("alice").await);
    let s = c
        .held_reads(pb::HeldReadsRequest {
            access: case_access(case),
        })
        .await
        .unwrap()
        .into_inner();
    rows(s)
        .await
        .0
        .into_iter()
        .map(|r| r.provenance.unwrap().bof_read_id)
        .collect()
}

/// The retention passes' audit entries, as the auditor audrey reads them.
async fn retention_passes(h: &Harness) -> Vec<pb::AuditRecord> {
    let q = pb::AuditQuery {
        action: "retention.".into(),
        ..Default::default()
    };
    h.audit_entries("audrey", q).await
}

async fn run_retention(h: &Harness) -> pb::RetentionReport {
    let mut admin = pb::admin_client::AdminClient::new(h.user("carol").await);
    admin
        .run_retention(pb::RunRetentionRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn dict_has(store: &dyn Store, vrm: &str) -> bool {
    let v = nadc_core::Vrm::normalise(vrm).unwrap();
    let skeleton = ConfusableGroups::default().skeleton(v.as_str());
    let mut found = false;
    store
        .vrm_dict(&skeleton, true, &mut |x| {
            found |= *x == v;
            ControlFlow::Continue(())
        })
        .unwrap();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_reads_go_from_every_index_and_held_ones_stay_for_their_case() {
    let mut h = Harness::start().await;
    // KENT keeps its reads for two years; everyone else for the node's 365 days.
    h.configure = |cfg| {
        cfg.retention.per_force_days.insert("KENT".into(), 730);
    };
    h.restart().await;
    h.cameras("AVON", 2).await;
    h.cameras("KENT", 1).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let r = avon
        .push_batch(batch(vec![
            read("a1", "EX11PRD", "C1", 60),
            read("a2", "EX11PRD", "C2", 30),
            read("a3", "HE12LDR", "C1", 20),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 3);
    let mut kent = pb::ingest_client::IngestClient::new(h.bof("KENT").await);
    kent.push_batch(batch(vec![read("k1", "KE13NTR", "C1", 10)]))
        .await
        .unwrap();

    // Dora (disclosure) holds a3 for OP-HOLD, by its provenance: a read
    // returned under OP-HOLD (only those can be held for it).
    let timeline = h.case_rows("HE12LDR", "OP-HOLD").await;
    let mut holds = pb::holds_client::HoldsClient::new(h.user("dora").await);
    let placed = holds
        .place(pb::PlaceHoldRequest {
            case_ref: "OP-HOLD".into(),
            reads: vec![held_read(&timeline[0])],
            reason: "evidence in a murder trial".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.reads, 1);
    // An analyst cannot place holds.
    let mut analyst = pb::holds_client::HoldsClient::new(h.user("alice").await);
    let e = analyst
        .release(pb::ReleaseHoldRequest {
            case_ref: "OP-HOLD".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);

    // A day before expiry nothing goes; then AVON's reads go, KENT's stay.
    h.clock.set(now().plus_millis(364 * DAY));
    let r = run_retention(&h).await;
    assert!(r.deleted.is_empty(), "{r:?}");
    h.clock.set(now().plus_millis(367 * DAY));
    let r = run_retention(&h).await;
    let deleted: BTreeMap<String, u64> = r
        .deleted
        .iter()
        .map(|d| (d.force.clone(), d.deleted))
        .fold(BTreeMap::new(), |mut m, (f, n)| {
            *m.entry(f).or_default() += n;
            m
        });
    assert_eq!(deleted, BTreeMap::from([("AVON".to_string(), 2)]));
    assert_eq!(r.held, 1);
    assert!(r.deleted.iter().all(|d| d.day == now().to_rfc3339()[..10]));
    let info = h.node_info("alice").await;
    let counts: BTreeMap<&str, u64> = info
        .forces
        .iter()
        .map(|f| (f.force.as_str(), f.rows))
        .collect();
    assert_eq!(counts, BTreeMap::from([("AVON", 1), ("KENT", 1)]));

    // The held read is reachable through its case only.
    assert_eq!(held(&h, "OP-HOLD").await, ["a3"]);
    assert!(held(&h, "OP-OTHER").await.is_empty());

    // The pass is in the audit, with counts per force per day.
    let passes = retention_passes(&h).await;
    let last = passes.last().unwrap();
    assert_eq!(last.user, "carol");
    assert_eq!(last.returned[0].force, "AVON");
    assert_eq!(last.returned[0].rows, 2);
    assert!(last.query.contains("\"AVON\":2"), "{}", last.query);

    // Released, the held read goes at the next pass; KENT's at 731 days.
    holds
        .release(pb::ReleaseHoldRequest {
            case_ref: "OP-HOLD".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = run_retention(&h).await;
    assert_eq!(r.deleted.len(), 1);
    assert_eq!(
        (r.deleted[0].force.as_str(), r.deleted[0].deleted),
        ("AVON", 1)
    );
    h.clock.set(now().plus_millis(732 * DAY));
    let r = run_retention(&h).await;
    assert_eq!(r.deleted.len(), 1);
    assert_eq!(r.deleted[0].force, "KENT");

    // Nothing is left in any index, and the VRM dictionary has forgotten
    // the plates.
    h.node.take().unwrap().shutdown().await.unwrap();
    let store = nadc_store::RocksStore::open(&h.data_dir(), Default::default()).unwrap();
    assert!(nadc_store::scan_counts(&store).unwrap().is_empty());
    for vrm in ["EX11PRD", "HE12LDR", "KE13NTR"] {
        assert!(!dict_has(&store, vrm), "{vrm} still in the dictionary");
        let mut left = 0;
        store
            .vrm_timeline(
                &nadc_core::Vrm::normalise(vrm).unwrap(),
                nadc_core::Timestamp::EPOCH,
                nadc_core::Timestamp::MAX,
                &mut |_| {
                    left += 1;
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(left, 0, "{vrm} still in the VRM index");
    }
    let mut geo = 0;
    store
        .geo_scan(
            &[nadc_core::CellRange {
                start: 0,
                end: u64::MAX,
            }],
            nadc_core::Timestamp::EPOCH,
            now().plus_millis(DAY),
            &mut |_| {
                geo += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(geo, 0, "geo index entries left");
    assert!(store.stats().unwrap().total_reads() == 0);
}

/// A read is refused at ingest once older than its force's retention where
/// that is shorter than the node's (retention would delete it at its next
/// pass), and older than the node's where the force's is longer (no search
/// reaches back further).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_are_refused_past_their_forces_retention_or_the_nodes() {
    let mut h = Harness::start().await;
    h.configure = |cfg| {
        cfg.retention.per_force_days.insert("KENT".into(), 730);
        cfg.retention.per_force_days.insert("AVON".into(), 30);
    };
    h.restart().await;
    const MINS_A_DAY: i64 = 1_440;
    let mut pushed = BTreeMap::new();
    for force in ["AVON", "KENT", "MET"] {
        h.cameras(force, 1).await;
        let mut c = pb::ingest_client::IngestClient::new(h.bof(force).await);
        let r = c
            .push_batch(batch(vec![
                read("d29", "AB12CDE", "C1", 29 * MINS_A_DAY),
                read("d31", "AB12CDE", "C1", 31 * MINS_A_DAY),
                read("d400", "AB12CDE", "C1", 400 * MINS_A_DAY),
            ]))
            .await
            .unwrap()
            .into_inner();
        let refused: Vec<(&str, &str)> = r
            .rejected
            .iter()
            .map(|x| (x.read_id.as_str(), x.message.as_str()))
            .collect();
        for (id, message) in &refused {
            assert!(
                message.contains(&format!("retention period for {force}")),
                "{id}: {message}"
            );
        }
        pushed.insert(
            force,
            refused
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(pushed["AVON"], ["d31", "d400"]);
    assert_eq!(pushed["KENT"], ["d400"]);
    assert_eq!(pushed["MET"], ["d400"]);
}

async fn reg_schedule(h: &Harness) -> pb::ScheduleResponse {
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user("dora").await);
    d.schedule(pb::ScheduleRequest {
        case_ref: "OP-REG".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

/// The case register forgets the reads retention deletes (their entries
/// and material marks), except reads under a legal hold, whose entries
/// stay with them; the pass's audit entry counts what went.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_entries_go_with_their_reads_except_held_ones() {
    let mut h = Harness::start().await;
    h.cameras("AVON", 2).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    avon.push_batch(batch(vec![
        read("r1", "RG11STR", "C1", 60),
        read("r2", "RG11STR", "C2", 30),
    ]))
    .await
    .unwrap();
    let found = h.case_rows("RG11STR", "OP-REG").await;
    assert_eq!(found.len(), 2);
    let p: Vec<pb::Provenance> = found
        .iter()
        .map(|r| r.provenance.clone().unwrap())
        .collect();
    // r1 is held; r2 is marked as material.
    let mut holds = pb::holds_client::HoldsClient::new(h.user("dora").await);
    holds
        .place(pb::PlaceHoldRequest {
            case_ref: "OP-REG".into(),
            reads: vec![held_read(&found[0])],
            reason: "trial".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user("dora").await);
    let marked = d
        .mark_material(pb::MarkMaterialRequest {
            case_ref: "OP-REG".into(),
            reads: vec![case_read_ref(&found[1])],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marked.marked, 1);
    let ids = |s: &pb::ScheduleResponse| -> Vec<String> {
        s.agencies
            .iter()
            .flat_map(|a| a.reads.iter().map(|i| i.bof_read_id.clone()))
            .collect()
    };
    let before = reg_schedule(&h).await;
    assert_eq!(ids(&before), ["r2", "r1"], "material first");

    // Entries as a node wrote them before cases had owners (tags `r` and
    // `m`), for both reads, with r2 marked: retention treats them alike.
    h.node.take().unwrap().shutdown().await.unwrap();
    {
        use nadc_store::keys;
        let store = nadc_store::RocksStore::open(&h.data_dir(), Default::default()).unwrap();
        let mut entries = Vec::new();
        for (r, id) in p.iter().zip(["r1", "r2"]) {
            let t = nadc_proto::from_pb_time(r.observed_at.as_ref().unwrap()).unwrap();
            let mark = keys::legacy_case_material_key("OP-OLD", &r.node, t.day(), r.seq);
            let mut read = mark.clone();
            read[0] = keys::LEGACY_CASE_READ;
            read.extend_from_slice(&7u64.to_be_bytes());
            let value = serde_json::json!({"node": r.node, "seq": r.seq, "observed_ms": t.millis(),
                "force": "AVON", "bof_read_id": id, "camera_id": r.camera_id, "vrm": "RG11STR"});
            entries.push((read, Some(value.to_string().into_bytes())));
            if id == "r2" {
                entries.push((mark, Some(br#"{"by":"alice","at":0,"note":""}"#.to_vec())));
            }
        }
        store.put_registry("case", entries).unwrap();
        store.close().unwrap();
    }
    // No periodic pass: the one asked for below is the one reported.
    h.configure = |cfg| cfg.retention.interval_s = 0;
    h.start_node().await;

    // Past retention: r2 goes, and its register entry and mark with it;
    // r1 stays under its hold, and so does its entry.
    h.clock.set(now().plus_millis(367 * DAY));
    let r = run_retention(&h).await;
    assert_eq!((r.deleted.len(), r.held), (1, 1));
    let after = reg_schedule(&h).await;
    assert_eq!(ids(&after), ["r1"]);
    assert_eq!(after.agencies[0].material, 0);
    let passes = retention_passes(&h).await;
    let last = passes.last().unwrap();
    assert!(
        last.query.contains("\"register_deleted\":2"),
        "{}",
        last.query
    );

    // In the store itself: one read entry left (r1's), no material mark;
    // the same of the entries written before cases had owners.
    h.node.take().unwrap().shutdown().await.unwrap();
    let store = nadc_store::RocksStore::open(&h.data_dir(), Default::default()).unwrap();
    let count = |tag: u8| {
        let mut n = 0;
        store
            .registry("case", &[tag], &mut |_, _| {
                n += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        n
    };
    use nadc_store::keys::{CASE_MATERIAL, CASE_READ, LEGACY_CASE_MATERIAL, LEGACY_CASE_READ};
    assert_eq!(
        [
            CASE_READ,
            CASE_MATERIAL,
            LEGACY_CASE_READ,
            LEGACY_CASE_MATERIAL
        ]
        .map(count),
        [1, 0, 1, 0]
    );
}
