//! The benchmark's later analyses (`nadc bench search --kind pattern |
//! sites | results | transparency`): crime pattern and camera positioning
//! over a series of sampled reads taken as incidents, results analysis and
//! the transparency report over the generated period.

use nadc_bof::pb;
use nadc_core::Timestamp;
use tonic::transport::Channel;

use crate::bench::{Answer, Sample, access, failed_nodes};

fn now() -> Timestamp {
    nadc_core::time::Clock::now(&nadc_core::time::SystemClock)
}

/// Incidents in a crime pattern series, and in a camera positioning one.
pub const PATTERN_INCIDENTS: usize = 20;
pub const SITES_INCIDENTS: usize = 200;

fn client(ch: &Channel) -> pb::analysis_client::AnalysisClient<Channel> {
    pb::analysis_client::AnalysisClient::new(ch.clone()).max_decoding_message_size(256 << 20)
}

fn incident(s: &Sample) -> pb::Incident {
    pb::Incident {
        at: Some(nadc_proto::to_pb_time(s.at)),
        lat: s.lat,
        lon: s.lon,
        ..Default::default()
    }
}

/// Vehicles near at least two of the series (500 m, ±30 minutes).
pub async fn pattern(ch: &Channel, scope: i32, series: &[Sample]) -> anyhow::Result<Answer> {
    let r = client(ch)
        .crime_pattern(pb::PatternRequest {
            access: access(),
            scope,
            incidents: series.iter().map(incident).collect(),
            radius_m: 500.0,
            window_minutes: 30,
            min_incidents: 2,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Answer {
        rows: r.vehicles.len(),
        total: r.reads_near_any,
        failed: failed_nodes(&r.nodes),
        ..Default::default()
    })
}

/// Candidate sites for the series as incidents, each 2 km north of its
/// sampled read (a read is at a camera, so its own place is covered), with
/// a 4 km road link east to west through each of the first 20.
pub async fn sites(ch: &Channel, scope: i32, series: &[Sample]) -> anyhow::Result<Answer> {
    let north = |s: &Sample| Sample {
        lat: s.lat + 2_000.0 / 111_320.0,
        ..s.clone()
    };
    let places: Vec<Sample> = series.iter().map(north).collect();
    let links = places
        .iter()
        .take(PATTERN_INCIDENTS)
        .map(|p| {
            let dlon = 2_000.0 / (111_320.0 * p.lat.to_radians().cos());
            pb::RoadLink {
                name: String::new(),
                lat: vec![p.lat, p.lat],
                lon: vec![p.lon - dlon, p.lon + dlon],
            }
        })
        .collect();
    let r = client(ch)
        .camera_sites(pb::SitesRequest {
            access: access(),
            scope,
            incidents: places.iter().map(incident).collect(),
            links,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Answer {
        rows: r.sites.len(),
        total: u64::from(r.cameras_considered),
        failed: failed_nodes(&r.nodes),
        ..Default::default()
    })
}

/// The benchmark user's force's results from the period's start to now
/// (so its searches count), by month.
pub async fn results(ch: &Channel, scope: i32, first: Timestamp) -> anyhow::Result<Answer> {
    let r = client(ch)
        .results(pb::ResultsRequest {
            access: access(),
            scope,
            from: Some(nadc_proto::to_pb_time(first)),
            to: Some(nadc_proto::to_pb_time(now())),
            by_month: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Answer {
        rows: r.searches.len(),
        total: r.reads,
        failed: failed_nodes(&r.nodes),
        ..Default::default()
    })
}

/// The transparency report for the last closed month (the report counts
/// the same records whatever the months asked).
pub async fn transparency(ch: &Channel, scope: i32) -> anyhow::Result<Answer> {
    let month = |t: Timestamp| t.to_rfc3339().chars().take(7).collect::<String>();
    // The day before this month's first.
    let start = Timestamp::parse_rfc3339(&format!("{}-01T00:00:00Z", month(now())))?;
    let last = start.plus_millis(-1);
    let r = client(ch)
        .transparency(pb::TransparencyRequest {
            from_month: month(last),
            to_month: month(last),
            scope,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Answer {
        rows: r.rows.len(),
        total: r
            .rows
            .iter()
            .filter_map(|x| x.reads_held.as_ref())
            .map(|c| c.value)
            .sum(),
        failed: failed_nodes(&r.nodes),
        ..Default::default()
    })
}

/// Camera health of every camera in the hour before the sampled read,
/// each against its usual rate over the 7 days before.
pub async fn camera_health(ch: &Channel, scope: i32, s: &Sample) -> anyhow::Result<Answer> {
    let r = client(ch)
        .camera_health(pb::CameraHealthRequest {
            access: access(),
            scope,
            from: Some(nadc_proto::to_pb_time(s.at.plus_millis(-3_600_000))),
            to: Some(nadc_proto::to_pb_time(s.at)),
            baseline_days: 7,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(Answer {
        rows: r.cameras.len(),
        total: r.cameras.iter().map(|c| c.reads).sum(),
        failed: failed_nodes(&r.nodes),
        ..Default::default()
    })
}

/// The list retrospective entries are added to.
const RETRO_LIST: &str = "bench-retrospective";

/// Adds the sampled read's VRM to a hotlist with a one-day look-back: the
/// entry stored, its retrospective hits found, registered and logged
/// (the benchmark user must be a hotlist manager too).
pub async fn retrospective(ch: &Channel, s: &Sample) -> anyhow::Result<Answer> {
    let mut c = pb::hotlists_client::HotlistsClient::new(ch.clone());
    let made = c
        .create_hotlist(pb::CreateHotlistRequest {
            name: RETRO_LIST.into(),
            purpose: "benchmark".into(),
            ..Default::default()
        })
        .await;
    if let Err(e) = made
        && e.code() != tonic::Code::AlreadyExists
    {
        return Err(e.into());
    }
    let r = c
        .add_entries(pb::AddEntriesRequest {
            list: Some(pb::HotlistRef {
                owner: String::new(),
                name: RETRO_LIST.into(),
            }),
            entries: vec![pb::HotlistEntry {
                vrm: s.vrm.clone(),
                reason: "benchmark".into(),
                intel_ref: "BENCH/1".into(),
                action: pb::Action::Intelligence as i32,
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
                ..Default::default()
            }],
            look_back_days: 1,
            access: access(),
        })
        .await?
        .into_inner();
    Ok(Answer {
        rows: r.retrospective_hits as usize,
        total: u64::from(r.stored),
        ..Default::default()
    })
}
