//! The governed path of every search RPC as a table: search × caller's
//! force × case (own, another force's unshared, another force's shared) ×
//! data-age tier (recent, older without an authorisation, older clipped).
//! Each cell asserts the exact outcome (the read ids returned, or the code
//! and a message naming the rule) and the audit entry it left (deploy/
//! ACCESS.md). The expectations are written out here, not computed by the
//! node's own rules.

mod support;

use nadc_bof::pb;
use nadc_core::Timestamp;
use support::{Harness, batch, now, read};
use tonic::Code;
use tonic::transport::Channel;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// The searches with rows (convoy and clones answer pairs: their cells
/// check the outcome and the audit, not rows).
#[derive(Clone, Copy, Debug)]
enum Kind {
    Timeline,
    Vrm,
    Geo,
    Vehicle,
    Camera,
    Convoy,
    Clones,
}

const KINDS: [Kind; 7] = [
    Kind::Timeline,
    Kind::Vrm,
    Kind::Geo,
    Kind::Vehicle,
    Kind::Camera,
    Kind::Convoy,
    Kind::Clones,
];

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::Timeline => "search.vrm_timeline",
            Kind::Vrm => "search.vrm",
            Kind::Geo => "search.geo",
            Kind::Vehicle => "search.vehicle",
            Kind::Camera => "search.camera",
            Kind::Convoy => "search.convoy",
            Kind::Clones => "search.clones",
        }
    }

    fn has_rows(self) -> bool {
        !matches!(self, Kind::Convoy | Kind::Clones)
    }
}

/// The windows of the tier dimension (each under the node's 31-day cap
/// on a window; the reads are 80 and 100 days old).
#[derive(Clone, Copy, Debug)]
enum Tier {
    /// 85 to 75 days ago: inside the 90-day standard tier.
    Recent,
    /// 105 to 75 days ago: it starts older than the standard tier.
    Older,
    /// The same, clipped to what the context permits (90 to 75 days ago).
    OlderClipped,
}

macro_rules! ts {
    ($t:expr) => {
        Some(nadc_proto::to_pb_time($t))
    };
}

fn window(tier: Tier) -> (Timestamp, Timestamp) {
    let start = match tier {
        Tier::Recent => now().plus_millis(-85 * DAY),
        Tier::Older | Tier::OlderClipped => now().plus_millis(-105 * DAY),
    };
    (start, now().plus_millis(-75 * DAY))
}

fn access(case: &str, owner: &str, tier: Tier) -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: case.into(),
        case_force: owner.into(),
        clip_to_permitted: matches!(tier, Tier::OlderClipped),
        ..Default::default()
    })
}

/// Runs `kind` as the caller of `ch` under (`case`, `owner`) over the
/// tier's window: the read ids returned (sorted), or the refusal.
async fn run(
    ch: Channel,
    kind: Kind,
    case: &str,
    owner: &str,
    tier: Tier,
) -> Result<Vec<String>, tonic::Status> {
    let (from, to) = window(tier);
    let access = access(case, owner, tier);
    let mut c = pb::search_client::SearchClient::new(ch);
    let area = || {
        vec![pb::Area {
            lat: 51.46,
            lon: -2.58,
            radius_m: 500.0,
            from: ts!(from),
            to: ts!(to),
            ..Default::default()
        }]
    };
    let rows = match kind {
        Kind::Timeline => {
            c.vrm_timeline(pb::VrmTimelineRequest {
                vrm: "AB12CDE".into(),
                from: ts!(from),
                to: ts!(to),
                access,
                ..Default::default()
            })
            .await?
        }
        Kind::Vrm => {
            c.vrm_search(pb::VrmSearchRequest {
                pattern: "AB12CD?".into(),
                from: ts!(from),
                to: ts!(to),
                access,
                ..Default::default()
            })
            .await?
        }
        Kind::Geo => {
            c.geo_search(pb::GeoSearchRequest {
                areas: area(),
                access,
                ..Default::default()
            })
            .await?
        }
        Kind::Vehicle => {
            c.vehicle_search(pb::VehicleSearchRequest {
                make: Some("Ford".into()),
                areas: area(),
                from: ts!(from),
                to: ts!(to),
                access,
                ..Default::default()
            })
            .await?
        }
        Kind::Camera => {
            c.camera_search(pb::CameraSearchRequest {
                cameras: vec![pb::CameraRef {
                    force: "AVON".into(),
                    camera_id: "C1".into(),
                }],
                from: ts!(from),
                to: ts!(to),
                access,
                ..Default::default()
            })
            .await?
        }
        Kind::Convoy => {
            let mut s = c
                .convoy(pb::ConvoyRequest {
                    vrms: vec!["AB12CDE".into()],
                    from: ts!(from),
                    to: ts!(to),
                    window_s: 120,
                    access,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            return Ok(Vec::new());
        }
        Kind::Clones => {
            let mut s = c
                .clones(pb::ClonesRequest {
                    vrm: "AB12CDE".into(),
                    from: ts!(from),
                    to: ts!(to),
                    access,
                    ..Default::default()
                })
                .await?
                .into_inner();
            while s.message().await?.is_some() {}
            return Ok(Vec::new());
        }
    };
    let (mut ids, _) = support::read_ids(rows.into_inner()).await?;
    ids.sort();
    Ok(ids)
}

/// The last closing entry of `user`'s `action` as `auditor` reads it:
/// (outcome, case as recorded, reason).
async fn last_entry(
    h: &Harness,
    auditor: &str,
    user: &str,
    action: &str,
) -> (String, String, String) {
    let q = pb::AuditQuery {
        user: user.into(),
        action: action.into(),
        limit: 100_000,
        ..Default::default()
    };
    let e = h
        .audit_entries(auditor, q)
        .await
        .into_iter()
        .rfind(|e| e.action == action)
        .unwrap_or_else(|| panic!("no {action} entry for {user}"));
    (e.outcome, e.case_ref, e.reason)
}

/// What a cell expects.
#[derive(Debug)]
enum Expect {
    /// These read ids (for the searches with rows).
    Rows(&'static [&'static str]),
    /// Refused with this code and a message containing this text.
    Refused(Code, &'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_search_obeys_case_membership_and_the_data_age_tier_and_audits_the_cell() {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let r = avon
        .push_batch(batch(vec![
            // 80 days old, and 100 days old (past the 90-day standard tier).
            read("new", "AB12CDE", "C1", 80 * DAY / MIN),
            read("old", "AB12CDE", "C1", 100 * DAY / MIN),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    // AVON opens its case OP-A; KENT has its own OP-K.
    h.case_rows("AB12CDE", "OP-A").await;

    const TIER: &str = "older data needs a supervisor's authorisation";
    const NOT_SHARED: &str = "case AVON/OP-A belongs to AVON and is not shared with KENT";
    // (caller, auditor of the caller's force, case, owner named, tier, expected)
    let before_share: Vec<(&str, &str, &str, &str, Tier, Expect)> = vec![
        (
            "alice",
            "audrey",
            "OP-A",
            "",
            Tier::Recent,
            Expect::Rows(&["new"]),
        ),
        (
            "alice",
            "audrey",
            "OP-A",
            "",
            Tier::Older,
            Expect::Refused(Code::PermissionDenied, TIER),
        ),
        (
            "alice",
            "audrey",
            "OP-A",
            "",
            Tier::OlderClipped,
            Expect::Rows(&["new"]),
        ),
        (
            "kim",
            "kurt",
            "OP-K",
            "",
            Tier::Recent,
            Expect::Rows(&["new"]),
        ),
        (
            "kim",
            "kurt",
            "OP-K",
            "",
            Tier::Older,
            Expect::Refused(Code::PermissionDenied, TIER),
        ),
        (
            "kim",
            "kurt",
            "OP-A",
            "AVON",
            Tier::Recent,
            Expect::Refused(Code::PermissionDenied, NOT_SHARED),
        ),
    ];
    let after_share: Vec<(&str, &str, &str, &str, Tier, Expect)> = vec![
        (
            "kim",
            "kurt",
            "OP-A",
            "AVON",
            Tier::Recent,
            Expect::Rows(&["new"]),
        ),
        (
            "kim",
            "kurt",
            "OP-A",
            "AVON",
            Tier::Older,
            Expect::Refused(Code::PermissionDenied, TIER),
        ),
        (
            "kim",
            "kurt",
            "OP-A",
            "AVON",
            Tier::OlderClipped,
            Expect::Rows(&["new"]),
        ),
    ];

    let mut wrong = Vec::new();
    let mut check = async |cells: &[(&str, &str, &str, &str, Tier, Expect)]| {
        for kind in KINDS {
            for (user, auditor, case, owner, tier, expect) in cells {
                let got = run(h.user(user).await, kind, case, owner, *tier).await;
                let cell = format!("{kind:?} {user} {owner}/{case} {tier:?}");
                let (outcome, recorded_case, reason) =
                    last_entry(&h, auditor, user, kind.action()).await;
                let shown_case = if owner.is_empty() {
                    case.to_string()
                } else {
                    format!("{owner}/{case}")
                };
                if recorded_case != shown_case {
                    wrong.push(format!("{cell}: audited under case {recorded_case:?}"));
                }
                match (expect, got) {
                    (Expect::Rows(want), Ok(ids)) => {
                        if kind.has_rows() && ids != *want {
                            wrong.push(format!("{cell}: rows {ids:?}, want {want:?}"));
                        }
                        if outcome != "ok" {
                            wrong.push(format!("{cell}: audited {outcome} ({reason})"));
                        }
                    }
                    (Expect::Refused(code, rule), Err(e)) => {
                        if e.code() != *code || !e.message().contains(rule) {
                            wrong.push(format!("{cell}: {:?} {}", e.code(), e.message()));
                        }
                        if outcome != "refused" || !reason.contains(rule) {
                            wrong.push(format!("{cell}: audited {outcome} ({reason})"));
                        }
                    }
                    (want, got) => wrong.push(format!("{cell}: got {got:?}, want {want:?}")),
                }
            }
        }
    };
    check(&before_share).await;
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user("sam").await);
    d.share(pb::ShareCaseRequest {
        case_ref: "OP-A".into(),
        force: "KENT".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    check(&after_share).await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
