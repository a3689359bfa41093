//! The case register and disclosure schedule over mTLS: searches under a
//! case record what they returned; users mark material; a disclosure
//! officer records each owning agency's consultation; the schedule groups
//! the material by owning agency with the searches that produced it.

mod support;

use nadc_bof::pb;
use support::{Harness, batch, case_read_ref, read};

/// An agency in the schedule: force, consultation status, material count,
/// (read id, material) of each read.
type Agency = (String, i32, u64, Vec<(String, bool)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schedule_groups_a_cases_material_by_owning_agency() {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    h.cameras("KENT", 1).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    avon.push_batch(batch(vec![
        read("a1", "CA53REF", "C1", 50),
        read("a2", "CA53REF", "C2", 40),
        read("x1", "OT43HER", "C1", 30),
    ]))
    .await
    .unwrap();
    let mut kent = pb::ingest_client::IngestClient::new(h.bof("KENT").await);
    kent.push_batch(batch(vec![read("k1", "CA53REF", "C1", 20)]))
        .await
        .unwrap();

    let rows = h.case_rows("CA53REF", "OP-DISC").await;
    assert_eq!(rows.len(), 3);
    // A read returned under another case only.
    let other = h.case_rows("OT43HER", "OP-ELSE").await;
    assert!(!rows[1].mou_consult && rows[2].mou_consult);

    // alice marks the second AVON read and the KENT read as material.
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user("alice").await);
    let r = d
        .mark_material(pb::MarkMaterialRequest {
            case_ref: "OP-DISC".into(),
            reads: vec![
                case_read_ref(&rows[1]),
                case_read_ref(&rows[2]),
                case_read_ref(&other[0]),
            ],
            unmark: false,
            note: "used in the interview".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.marked, 2);
    assert_eq!(
        r.not_in_case.len(),
        1,
        "a read of another case is not material here"
    );
    // Only a disclosure officer records consultations.
    let e = d
        .set_consultation(pb::SetConsultationRequest {
            case_ref: "OP-DISC".into(),
            force: "KENT".into(),
            status: pb::ConsultationStatus::Approved as i32,
            note: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let mut dora = pb::disclosure_client::DisclosureClient::new(h.user("dora").await);
    dora.set_consultation(pb::SetConsultationRequest {
        case_ref: "OP-DISC".into(),
        force: "KENT".into(),
        status: pb::ConsultationStatus::Approved as i32,
        note: "KENT disclosure officer agreed 24/11".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let s = dora
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-DISC".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let agencies: Vec<Agency> = s
        .agencies
        .iter()
        .map(|a| {
            (
                a.force.clone(),
                a.consultation.as_ref().unwrap().status,
                a.material,
                a.reads
                    .iter()
                    .map(|i| (i.bof_read_id.clone(), i.material))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        agencies,
        [
            (
                "AVON".to_string(),
                pb::ConsultationStatus::Pending as i32,
                1,
                vec![("a2".to_string(), true), ("a1".to_string(), false)]
            ),
            (
                "KENT".to_string(),
                pb::ConsultationStatus::Approved as i32,
                1,
                vec![("k1".to_string(), true)]
            ),
        ]
    );
    let kent_item = &s.agencies[1].reads[0];
    assert_eq!(kent_item.marked_by, "alice");
    assert_eq!(kent_item.searches.len(), 1);
    // The search that produced the material, from the audit.
    assert_eq!(s.searches.len(), 1);
    assert_eq!(s.searches[0].user, "alice");
    assert_eq!(s.searches[0].action, "search.vrm_timeline");
    assert_eq!(s.searches[0].audit_seq, kent_item.searches[0]);
    // The other case knows only its own read.
    let s = dora
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-ELSE".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.agencies.len(), 1);
    assert_eq!(s.agencies[0].reads[0].bof_read_id, "x1");
}
