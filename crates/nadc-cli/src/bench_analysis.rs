//! The benchmark's later analyses (`nadc bench search --kind pattern |
//! sites | results | transparency`): crime pattern and camera positioning
//! over a series of sampled reads taken as incidents, results analysis and
//! the transparency report over the generated period.

use nadc_bof::pb;
use nadc_core::Timestamp;
use tonic::transport::Channel;

use crate::bench::{Answer, Sample, access, failed_nodes};

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

/// Candidate sites for the series as incidents, with a road link from each
/// to the next.
pub async fn sites(ch: &Channel, scope: i32, series: &[Sample]) -> anyhow::Result<Answer> {
    let links = series
        .windows(2)
        .map(|w| pb::RoadLink {
            name: String::new(),
            lat: vec![w[0].lat, w[1].lat],
            lon: vec![w[0].lon, w[1].lon],
        })
        .collect();
    let r = client(ch)
        .camera_sites(pb::SitesRequest {
            access: access(),
            scope,
            incidents: series.iter().map(incident).collect(),
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

/// The benchmark user's force's results over the period, by month.
pub async fn results(
    ch: &Channel,
    scope: i32,
    period: (Timestamp, Timestamp),
) -> anyhow::Result<Answer> {
    let r = client(ch)
        .results(pb::ResultsRequest {
            access: access(),
            scope,
            from: Some(nadc_proto::to_pb_time(period.0)),
            to: Some(nadc_proto::to_pb_time(period.1)),
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

/// The transparency report for the months of the period.
pub async fn transparency(
    ch: &Channel,
    scope: i32,
    period: (Timestamp, Timestamp),
) -> anyhow::Result<Answer> {
    let month = |t: Timestamp| t.to_rfc3339().chars().take(7).collect::<String>();
    let r = client(ch)
        .transparency(pb::TransparencyRequest {
            from_month: month(period.0),
            to_month: month(period.1),
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
