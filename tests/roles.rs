//! Who may do what, over mTLS: every kind of caller against every kind of
//! operation, each allowed or refused with PERMISSION_DENIED as the access
//! model in deploy/ACCESS.md says.

mod support;

use nadc_bof::pb;
use support::{Harness, now};
use tonic::transport::Channel;

/// The callers: a BOF and a user of each role.
const CALLERS: [&str; 8] = [
    "bof:AVON", "alice", "ivan", "sam", "dora", "harry", "audrey", "carol",
];

#[derive(Clone, Copy, Debug)]
enum Op {
    Push,
    Cameras,
    Search,
    ChangeHotlist,
    WatchAlerts,
    Grant,
    Audit,
    Retention,
    Hold,
}

/// Who may, by caller name.
fn allowed(op: Op) -> &'static [&'static str] {
    match op {
        Op::Push | Op::Cameras => &["bof:AVON"],
        Op::Search => &["alice", "ivan", "sam", "dora"],
        Op::ChangeHotlist => &["harry", "carol"],
        Op::WatchAlerts => &["alice", "ivan", "sam", "dora", "harry", "audrey", "carol"],
        Op::Grant => &["sam"],
        Op::Audit => &["audrey"],
        Op::Retention => &["carol"],
        Op::Hold => &["sam", "dora"],
    }
}

async fn channel(h: &Harness, who: &str) -> Channel {
    match who.strip_prefix("bof:") {
        Some(f) => h.bof(f).await,
        None => h.user(who).await,
    }
}

/// Runs `op` as the caller; `Err(code)` if refused.
async fn attempt(ch: Channel, op: Op, n: usize) -> Result<(), tonic::Code> {
    let code = |s: tonic::Status| s.code();
    match op {
        Op::Push => pb::ingest_client::IngestClient::new(ch)
            .push_batch(support::batch(vec![]))
            .await
            .map(drop)
            .map_err(code),
        Op::Cameras => pb::admin_client::AdminClient::new(ch)
            .import_cameras(pb::ImportCamerasRequest { cameras: vec![] })
            .await
            .map(drop)
            .map_err(code),
        Op::Search => {
            let mut c = pb::search_client::SearchClient::new(ch);
            let mut s = c
                .vrm_timeline(pb::VrmTimelineRequest {
                    vrm: "AB12CDE".into(),
                    access: support::access(),
                    ..Default::default()
                })
                .await
                .map_err(code)?
                .into_inner();
            while s.message().await.map_err(code)?.is_some() {}
            Ok(())
        }
        Op::ChangeHotlist => pb::hotlists_client::HotlistsClient::new(ch)
            .create_hotlist(pb::CreateHotlistRequest {
                name: format!("list-{n}"),
                purpose: "serious crime".into(),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
        Op::WatchAlerts => {
            let mut c = pb::alerts_client::AlertsClient::new(ch);
            let mut s = c
                .watch(pb::WatchRequest {
                    history_only: true,
                    ..Default::default()
                })
                .await
                .map_err(code)?
                .into_inner();
            while s.message().await.map_err(code)?.is_some() {}
            Ok(())
        }
        Op::Grant => pb::authorisations_client::AuthorisationsClient::new(ch)
            .grant(pb::GrantRequest {
                id: format!("AUTH-{n}"),
                case_ref: "OP-1".into(),
                purpose: "serious-crime".into(),
                data_from: Some(nadc_proto::to_pb_time(now().minus_days(200))),
                data_to: Some(nadc_proto::to_pb_time(now())),
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
                reason: "test".into(),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
        Op::Audit => pb::audit_client::AuditClient::new(ch)
            .verify(pb::VerifyAuditRequest {})
            .await
            .map(drop)
            .map_err(code),
        Op::Retention => pb::admin_client::AdminClient::new(ch)
            .run_retention(pb::RunRetentionRequest {})
            .await
            .map(drop)
            .map_err(code),
        Op::Hold => pb::holds_client::HoldsClient::new(ch)
            .release(pb::ReleaseHoldRequest {
                case_ref: "OP-1".into(),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(code),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_role_is_allowed_and_refused_where_it_should_be() {
    let h = Harness::start().await;
    let ops = [
        Op::Push,
        Op::Cameras,
        Op::Search,
        Op::ChangeHotlist,
        Op::WatchAlerts,
        Op::Grant,
        Op::Audit,
        Op::Retention,
        Op::Hold,
    ];
    let mut wrong = Vec::new();
    let mut n = 0;
    for who in CALLERS {
        let ch = channel(&h, who).await;
        for op in ops {
            n += 1;
            let got = attempt(ch.clone(), op, n).await;
            let may = allowed(op).contains(&who);
            match (may, got) {
                (true, Ok(())) | (false, Err(tonic::Code::PermissionDenied)) => {}
                (true, Err(c)) => wrong.push(format!("{who} {op:?}: refused with {c:?}")),
                (false, other) => wrong.push(format!("{who} {op:?}: not refused: {other:?}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
