//! Who may call what, over mTLS: every kind of caller against every RPC in
//! `proto/`, each let through its role gate or refused with
//! PERMISSION_DENIED, as the table in deploy/ACCESS.md ("Every RPC") says.
//!
//! A call let through may still fail on its (deliberately minimal) request,
//! with any code but PERMISSION_DENIED: the table is about who passes the
//! gate. What a caller then sees of other forces' data, and what is
//! audited, is tests/governed.rs's business.

mod support;

use nadc_bof::pb;
use support::{Harness, access, now};
use tonic::Code;
use tonic::transport::Channel;

/// The callers: a BOF, a user of each role, and a user with none.
const CALLERS: [&str; 9] = [
    "bof:AVON", "alice", "ivan", "sam", "dora", "harry", "audrey", "carol", "nora",
];

/// Every RPC of `proto/nadc/v1`.
#[derive(Clone, Copy, Debug)]
enum Op {
    PushBatch,
    PushStream,
    Push,
    ImportCameras,
    ListCameras,
    NodeInfo,
    RunRetention,
    VrmTimeline,
    VrmSearch,
    GeoSearch,
    VehicleSearch,
    CameraSearch,
    Convoy,
    Clones,
    HeldReads,
    HotSpots,
    CameraHealth,
    Alibi,
    SubjectProfile,
    AssociateNetwork,
    CrimePattern,
    Results,
    Transparency,
    CameraSites,
    CreateHotlist,
    DeleteHotlist,
    AddEntries,
    SetRules,
    RemoveEntries,
    ListHotlists,
    GetHotlist,
    Watch,
    Verify,
    Grant,
    ListAuthorisations,
    Revoke,
    PlaceHold,
    ReleaseHold,
    AuditVerify,
    AuditQuery,
    MarkMaterial,
    SetConsultation,
    Schedule,
    Share,
}

const ALL: [Op; 44] = [
    Op::PushBatch,
    Op::PushStream,
    Op::Push,
    Op::ImportCameras,
    Op::ListCameras,
    Op::NodeInfo,
    Op::RunRetention,
    Op::VrmTimeline,
    Op::VrmSearch,
    Op::GeoSearch,
    Op::VehicleSearch,
    Op::CameraSearch,
    Op::Convoy,
    Op::Clones,
    Op::HeldReads,
    Op::HotSpots,
    Op::CameraHealth,
    Op::Alibi,
    Op::SubjectProfile,
    Op::AssociateNetwork,
    Op::CrimePattern,
    Op::Results,
    Op::Transparency,
    Op::CameraSites,
    Op::CreateHotlist,
    Op::DeleteHotlist,
    Op::AddEntries,
    Op::SetRules,
    Op::RemoveEntries,
    Op::ListHotlists,
    Op::GetHotlist,
    Op::Watch,
    Op::Verify,
    Op::Grant,
    Op::ListAuthorisations,
    Op::Revoke,
    Op::PlaceHold,
    Op::ReleaseHold,
    Op::AuditVerify,
    Op::AuditQuery,
    Op::MarkMaterial,
    Op::SetConsultation,
    Op::Schedule,
    Op::Share,
];

const BOF: &[&str] = &["bof:AVON"];
const SEARCHERS: &[&str] = &["alice", "ivan", "sam", "dora"];
const ALERTING: &[&str] = &["alice", "ivan", "sam", "harry"];
const HOTLIST_READERS: &[&str] = &["alice", "ivan", "sam", "harry", "carol"];
const USERS: &[&str] = &[
    "alice", "ivan", "sam", "dora", "harry", "audrey", "carol", "nora",
];

/// Who passes each RPC's gate: deploy/ACCESS.md's table.
fn allowed(op: Op) -> &'static [&'static str] {
    match op {
        Op::PushBatch | Op::PushStream | Op::Push | Op::ImportCameras => BOF,
        Op::ListCameras | Op::NodeInfo | Op::Transparency => &CALLERS,
        Op::RunRetention => &["carol"],
        Op::VrmTimeline
        | Op::VrmSearch
        | Op::GeoSearch
        | Op::VehicleSearch
        | Op::CameraSearch
        | Op::Convoy
        | Op::Clones
        | Op::HeldReads
        | Op::HotSpots
        | Op::CameraHealth
        | Op::Alibi
        | Op::SubjectProfile
        | Op::AssociateNetwork
        | Op::CrimePattern
        | Op::Results
        | Op::CameraSites
        | Op::MarkMaterial
        | Op::Schedule => SEARCHERS,
        Op::CreateHotlist
        | Op::DeleteHotlist
        | Op::AddEntries
        | Op::SetRules
        | Op::RemoveEntries => &["harry", "carol"],
        Op::ListHotlists | Op::GetHotlist => HOTLIST_READERS,
        Op::Watch | Op::Verify => ALERTING,
        Op::Grant | Op::Revoke => &["sam"],
        Op::ListAuthorisations => USERS,
        Op::PlaceHold | Op::ReleaseHold => &["sam", "dora"],
        Op::AuditVerify | Op::AuditQuery => &["audrey"],
        Op::SetConsultation => &["dora"],
        Op::Share => &["sam", "dora"],
    }
}

async fn channel(h: &Harness, who: &str) -> Channel {
    match who.strip_prefix("bof:") {
        Some(f) => h.bof(f).await,
        None => h.user(who).await,
    }
}

fn list(name: &str) -> Option<pb::HotlistRef> {
    Some(pb::HotlistRef {
        owner: String::new(),
        name: name.into(),
    })
}

/// Reads a server stream to its end.
async fn drain<T>(
    s: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), tonic::Status> {
    let mut s = s?.into_inner();
    while s.message().await?.is_some() {}
    Ok(())
}

fn unary<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<(), tonic::Status> {
    r.map(drop)
}

/// Calls `op` as the caller of `ch` with a minimal request.
async fn attempt(ch: Channel, op: Op, n: usize) -> Result<(), tonic::Status> {
    let from = Some(nadc_proto::to_pb_time(now().plus_millis(-3_600_000)));
    let to = Some(nadc_proto::to_pb_time(now()));
    let mut ingest = pb::ingest_client::IngestClient::new(ch.clone());
    let mut admin = pb::admin_client::AdminClient::new(ch.clone());
    let mut search = pb::search_client::SearchClient::new(ch.clone());
    let mut hotlists = pb::hotlists_client::HotlistsClient::new(ch.clone());
    let mut alerts = pb::alerts_client::AlertsClient::new(ch.clone());
    let mut auth = pb::authorisations_client::AuthorisationsClient::new(ch.clone());
    let mut holds = pb::holds_client::HoldsClient::new(ch.clone());
    let mut audit = pb::audit_client::AuditClient::new(ch.clone());
    let mut disclosure = pb::disclosure_client::DisclosureClient::new(ch.clone());
    match op {
        Op::PushBatch => unary(ingest.push_batch(support::batch(vec![])).await),
        Op::PushStream => {
            drain(
                ingest
                    .push_stream(tokio_stream::iter(vec![support::batch(vec![])]))
                    .await,
            )
            .await
        }
        Op::Push => unary(
            ingest
                .push(tokio_stream::iter(vec![support::batch(vec![])]))
                .await,
        ),
        Op::ImportCameras => unary(
            admin
                .import_cameras(pb::ImportCamerasRequest { cameras: vec![] })
                .await,
        ),
        Op::ListCameras => unary(admin.list_cameras(pb::ListCamerasRequest::default()).await),
        Op::NodeInfo => unary(admin.node_info(pb::NodeInfoRequest {}).await),
        Op::RunRetention => unary(admin.run_retention(pb::RunRetentionRequest {}).await),
        Op::VrmTimeline => {
            drain(
                search
                    .vrm_timeline(pb::VrmTimelineRequest {
                        vrm: "AB12CDE".into(),
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::VrmSearch => {
            drain(
                search
                    .vrm_search(pb::VrmSearchRequest {
                        pattern: "AB12C*".into(),
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::GeoSearch => {
            drain(
                search
                    .geo_search(pb::GeoSearchRequest {
                        areas: vec![pb::Area {
                            lat: 51.45,
                            lon: -2.58,
                            radius_m: 500.0,
                            from,
                            to,
                            ..Default::default()
                        }],
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::VehicleSearch => {
            drain(
                search
                    .vehicle_search(pb::VehicleSearchRequest {
                        make: Some("Ford".into()),
                        from,
                        to,
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::CameraSearch => {
            drain(
                search
                    .camera_search(pb::CameraSearchRequest {
                        cameras: vec![pb::CameraRef {
                            force: "AVON".into(),
                            camera_id: "C1".into(),
                        }],
                        from,
                        to,
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::Convoy => {
            drain(
                search
                    .convoy(pb::ConvoyRequest {
                        vrms: vec!["AB12CDE".into()],
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::Clones => {
            drain(
                search
                    .clones(pb::ClonesRequest {
                        from,
                        to,
                        access: access(),
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::HeldReads => {
            drain(
                search
                    .held_reads(pb::HeldReadsRequest { access: access() })
                    .await,
            )
            .await
        }
        Op::CameraHealth => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .camera_health(pb::CameraHealthRequest {
                    access: access(),
                    ..Default::default()
                })
                .await,
        ),
        Op::Alibi => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .alibi(pb::AlibiRequest {
                    access: access(),
                    vrm: "AB12CDE".into(),
                    claims: vec![pb::PlaceClaim {
                        lat: 51.45,
                        lon: -2.58,
                        from: Some(nadc_proto::to_pb_time(
                            support::now().plus_millis(-3_600_000),
                        )),
                        to: Some(nadc_proto::to_pb_time(support::now())),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .await,
        ),
        Op::SubjectProfile => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .subject_profile(pb::SubjectProfileRequest {
                    access: access(),
                    vrm: "AB12CDE".into(),
                    from: Some(nadc_proto::to_pb_time(
                        support::now().plus_millis(-86_400_000),
                    )),
                    to: Some(nadc_proto::to_pb_time(support::now())),
                    ..Default::default()
                })
                .await,
        ),
        Op::Results => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .results(pb::ResultsRequest {
                    access: access(),
                    from: Some(nadc_proto::to_pb_time(
                        support::now().plus_millis(-86_400_000),
                    )),
                    to: Some(nadc_proto::to_pb_time(support::now())),
                    ..Default::default()
                })
                .await,
        ),
        Op::CameraSites => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .camera_sites(pb::SitesRequest {
                    access: access(),
                    incidents: vec![pb::Incident {
                        lat: 51.45,
                        lon: -2.58,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .await,
        ),
        Op::Transparency => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .transparency(pb::TransparencyRequest {
                    from_month: "2026-11".into(),
                    to_month: "2026-11".into(),
                    ..Default::default()
                })
                .await,
        ),
        Op::CrimePattern => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .crime_pattern(pb::PatternRequest {
                    access: access(),
                    incidents: (1..=2)
                        .map(|h| pb::Incident {
                            at: Some(nadc_proto::to_pb_time(
                                support::now().plus_millis(-h * 3_600_000),
                            )),
                            lat: 51.45,
                            lon: -2.58,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .await,
        ),
        Op::AssociateNetwork => unary(
            pb::analysis_client::AnalysisClient::new(ch.clone())
                .associate_network(pb::NetworkRequest {
                    access: access(),
                    vrms: vec!["AB12CDE".into()],
                    from: Some(nadc_proto::to_pb_time(
                        support::now().plus_millis(-86_400_000),
                    )),
                    to: Some(nadc_proto::to_pb_time(support::now())),
                    ..Default::default()
                })
                .await,
        ),
        Op::HotSpots => unary(
            pb::analysis_client::AnalysisClient::new(ch)
                .hot_spots(pb::HotSpotsRequest {
                    access: access(),
                    vrms: vec!["AB12CDE".into()],
                    ..Default::default()
                })
                .await,
        ),
        Op::CreateHotlist => unary(
            hotlists
                .create_hotlist(pb::CreateHotlistRequest {
                    name: format!("list-{n}"),
                    purpose: "serious crime".into(),
                    ..Default::default()
                })
                .await,
        ),
        Op::DeleteHotlist => unary(
            hotlists
                .delete_hotlist(list(&format!("absent-{n}")).unwrap_or_default())
                .await,
        ),
        Op::AddEntries => unary(
            hotlists
                .add_entries(pb::AddEntriesRequest {
                    list: list("absent"),
                    entries: vec![],
                    look_back_days: 0,
                    access: None,
                })
                .await,
        ),
        Op::SetRules => unary(
            hotlists
                .set_rules(pb::SetRulesRequest {
                    list: list("absent"),
                    rules: vec![],
                })
                .await,
        ),
        Op::RemoveEntries => unary(
            hotlists
                .remove_entries(pb::RemoveEntriesRequest {
                    list: list("absent"),
                    vrms: vec![],
                })
                .await,
        ),
        Op::ListHotlists => unary(hotlists.list_hotlists(pb::ListHotlistsRequest {}).await),
        Op::GetHotlist => unary(
            hotlists
                .get_hotlist(list("absent").unwrap_or_default())
                .await,
        ),
        Op::Watch => {
            drain(
                alerts
                    .watch(pb::WatchRequest {
                        history_only: true,
                        ..Default::default()
                    })
                    .await,
            )
            .await
        }
        Op::Verify => unary(
            alerts
                .verify(pb::VerifyRequest {
                    position: 1,
                    state: pb::Verification::Confirmed as i32,
                    note: String::new(),
                    ..Default::default()
                })
                .await,
        ),
        Op::Grant => unary(
            auth.grant(pb::GrantRequest {
                id: format!("AUTH-{n}"),
                case_ref: "OP-1".into(),
                purpose: "serious-crime".into(),
                user: "alice".into(),
                data_from: Some(nadc_proto::to_pb_time(now().minus_days(200))),
                data_to: Some(nadc_proto::to_pb_time(now())),
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
                reason: "test".into(),
            })
            .await,
        ),
        Op::ListAuthorisations => unary(
            auth.list_authorisations(pb::ListAuthorisationsRequest {})
                .await,
        ),
        Op::Revoke => unary(
            auth.revoke(pb::RevokeRequest {
                id: "ABSENT".into(),
                reason: "test".into(),
            })
            .await,
        ),
        Op::PlaceHold => unary(
            holds
                .place(pb::PlaceHoldRequest {
                    case_ref: "OP-1".into(),
                    reads: vec![],
                    reason: "test".into(),
                    case_force: String::new(),
                })
                .await,
        ),
        Op::ReleaseHold => unary(
            holds
                .release(pb::ReleaseHoldRequest {
                    case_ref: "OP-1".into(),
                    case_force: String::new(),
                })
                .await,
        ),
        Op::AuditVerify => unary(audit.verify(pb::VerifyAuditRequest {}).await),
        Op::AuditQuery => drain(audit.query(pb::AuditQuery::default()).await).await,
        Op::MarkMaterial => unary(
            disclosure
                .mark_material(pb::MarkMaterialRequest {
                    case_ref: "OP-1".into(),
                    ..Default::default()
                })
                .await,
        ),
        Op::SetConsultation => unary(
            disclosure
                .set_consultation(pb::SetConsultationRequest {
                    case_ref: "OP-1".into(),
                    force: "KENT".into(),
                    status: pb::ConsultationStatus::Pending as i32,
                    note: String::new(),
                    case_force: String::new(),
                })
                .await,
        ),
        Op::Share => unary(
            disclosure
                .share(pb::ShareCaseRequest {
                    case_ref: "OP-1".into(),
                    force: "KENT".into(),
                    ..Default::default()
                })
                .await,
        ),
        Op::Schedule => unary(
            disclosure
                .schedule(pb::ScheduleRequest {
                    case_ref: "OP-1".into(),
                    case_force: String::new(),
                })
                .await,
        ),
    }
}

/// Each RPC's service and method on the wire, and the audit action a
/// refusal at its gate is recorded under (deploy/ACCESS.md).
fn wire(op: Op) -> (&'static str, &'static str, &'static str) {
    match op {
        Op::PushBatch => ("Ingest", "PushBatch", "ingest.push"),
        Op::PushStream => ("Ingest", "PushStream", "ingest.push"),
        Op::Push => ("Ingest", "Push", "ingest.push"),
        Op::ImportCameras => ("Admin", "ImportCameras", "cameras.import"),
        Op::ListCameras => ("Admin", "ListCameras", "cameras.list"),
        Op::NodeInfo => ("Admin", "NodeInfo", "node.info"),
        Op::RunRetention => ("Admin", "RunRetention", "retention.run"),
        Op::VrmTimeline => ("Search", "VrmTimeline", "search.vrm_timeline"),
        Op::VrmSearch => ("Search", "VrmSearch", "search.vrm"),
        Op::GeoSearch => ("Search", "GeoSearch", "search.geo"),
        Op::VehicleSearch => ("Search", "VehicleSearch", "search.vehicle"),
        Op::CameraSearch => ("Search", "CameraSearch", "search.camera"),
        Op::Convoy => ("Search", "Convoy", "search.convoy"),
        Op::Clones => ("Search", "Clones", "search.clones"),
        Op::HeldReads => ("Search", "HeldReads", "search.held_reads"),
        Op::HotSpots => ("Analysis", "HotSpots", "search.hotspots"),
        Op::CameraHealth => ("Analysis", "CameraHealth", "search.camera_health"),
        Op::Alibi => ("Analysis", "Alibi", "search.alibi"),
        Op::SubjectProfile => ("Analysis", "SubjectProfile", "search.profile"),
        Op::AssociateNetwork => ("Analysis", "AssociateNetwork", "search.network"),
        Op::CrimePattern => ("Analysis", "CrimePattern", "search.pattern"),
        Op::Results => ("Analysis", "Results", "search.results"),
        Op::CameraSites => ("Analysis", "CameraSites", "search.sites"),
        Op::Transparency => ("Analysis", "Transparency", "report.transparency"),
        Op::CreateHotlist => ("Hotlists", "CreateHotlist", "hotlist.create"),
        Op::DeleteHotlist => ("Hotlists", "DeleteHotlist", "hotlist.delete"),
        Op::AddEntries => ("Hotlists", "AddEntries", "hotlist.add"),
        Op::SetRules => ("Hotlists", "SetRules", "hotlist.rules"),
        Op::RemoveEntries => ("Hotlists", "RemoveEntries", "hotlist.remove"),
        Op::ListHotlists => ("Hotlists", "ListHotlists", "hotlist.list"),
        Op::GetHotlist => ("Hotlists", "GetHotlist", "hotlist.show"),
        Op::Watch => ("Alerts", "Watch", "alert.watch"),
        Op::Verify => ("Alerts", "Verify", "alert.verify"),
        Op::Grant => ("Authorisations", "Grant", "authorisation.grant"),
        Op::ListAuthorisations => ("Authorisations", "ListAuthorisations", "authorisation.list"),
        Op::Revoke => ("Authorisations", "Revoke", "authorisation.revoke"),
        Op::PlaceHold => ("Holds", "Place", "hold.place"),
        Op::ReleaseHold => ("Holds", "Release", "hold.release"),
        Op::AuditVerify => ("Audit", "Verify", "audit.verify"),
        Op::AuditQuery => ("Audit", "Query", "audit.query"),
        Op::MarkMaterial => ("Disclosure", "MarkMaterial", "case.mark"),
        Op::SetConsultation => ("Disclosure", "SetConsultation", "case.consultation"),
        Op::Schedule => ("Disclosure", "Schedule", "case.schedule"),
        Op::Share => ("Disclosure", "Share", "case.share"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rpc_lets_through_exactly_the_callers_its_rule_names() {
    let h = Harness::start().await;
    let mut wrong = Vec::new();
    let mut refused = std::collections::BTreeSet::new();
    let mut n = 0;
    for who in CALLERS {
        let ch = channel(&h, who).await;
        for op in ALL {
            n += 1;
            let got = attempt(ch.clone(), op, n).await;
            let may = allowed(op).contains(&who);
            let (service, method, action) = wire(op);
            match (may, got) {
                (true, Err(e))
                    if matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated) =>
                {
                    wrong.push(format!("{who} {op:?}: refused: {}", e.message()));
                }
                (true, _) => {}
                (false, Err(e)) if e.code() == Code::PermissionDenied => {
                    // The refusal names the rule it failed and the caller.
                    let rule = format!("{service}.{method} needs ");
                    if !e.message().contains(&rule) || !e.message().contains("caller is") {
                        wrong.push(format!("{who} {op:?}: refused as {:?}", e.message()));
                    }
                    let user = if who.starts_with("bof:") {
                        "bof:AVON"
                    } else {
                        who
                    };
                    refused.insert((user.to_string(), action.to_string()));
                }
                (false, other) => wrong.push(format!("{who} {op:?}: not refused: {other:?}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Each refusal at a gate left its entry in the audit, under the RPC's
    // action, with the caller; and no gate refused anything else. (carol
    // is KENT's: KENT's auditor reads hers.)
    let mut entries = Vec::new();
    for auditor in ["audrey", "kurt"] {
        let q = pb::AuditQuery {
            limit: 100_000,
            ..Default::default()
        };
        entries.extend(h.audit_entries(auditor, q).await);
    }
    let gate_refusals: std::collections::BTreeSet<(String, String)> = entries
        .into_iter()
        .filter(|e| {
            e.outcome == "refused" && e.reason.contains(" needs ") && e.reason.contains("caller is")
        })
        .map(|e| (e.user, e.action))
        .collect();
    let missing: Vec<_> = refused.difference(&gate_refusals).collect();
    let extra: Vec<_> = gate_refusals.difference(&refused).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not audited: {missing:?}; audited but not refused at a gate: {extra:?}"
    );
}

/// Calls `path` (a method no service may have) with an empty message.
async fn call_path(ch: Channel, path: &'static str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::NodeInfoRequest, pb::NodeInfoResponse>::default();
    grpc.unary(
        tonic::Request::new(pb::NodeInfoRequest {}),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_rpc_without_a_row_in_the_rules_table_is_refused_for_everyone() {
    let h = Harness::start().await;
    for who in ["carol", "bof:AVON", "audrey"] {
        for path in ["/nadc.v1.Search/Everything", "/nadc.v1.Backdoor/Dump"] {
            let e = call_path(channel(&h, who).await, path).await;
            assert_eq!(e.code(), Code::PermissionDenied, "{who} {path}: {e}");
            assert!(
                e.message().contains("no access rule") && e.message().contains(path),
                "{}",
                e.message()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_refused_at_the_gate_is_told_the_rule_and_audited() {
    let h = Harness::start().await;
    // nora holds no role: the searching gate names what she lacks.
    let e = pb::search_client::SearchClient::new(channel(&h, "nora").await)
        .geo_search(pb::GeoSearchRequest {
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("GeoSearch needs a searching role"),
        "{}",
        e.message()
    );
    // The refusal is in the log under the search's action, with her name.
    let mut entries = pb::audit_client::AuditClient::new(channel(&h, "audrey").await)
        .query(pb::AuditQuery {
            user: "nora".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(e) = entries.message().await.unwrap() {
        seen.push((e.action, e.outcome));
    }
    assert_eq!(
        seen,
        vec![("search.geo".to_string(), "refused".to_string())]
    );
}
