//! The nadc gRPC API: code generated from `proto/nadc/v1`, and the
//! conversions between its messages and `nadc-core` types.
//!
//! This is the only crate that sees generated prost types' internals;
//! everything else converts at this boundary. Conversions from the wire are
//! infallible into unvalidated inputs (e.g. [`ReadInput`]); validation lives
//! in `nadc-core`, so every per-read error is reported, not lost to a
//! decoding failure.
#![deny(unsafe_code)]

use std::fmt;

use nadc_core::camera::CameraError;
use nadc_core::read::ReadInput;
use nadc_core::{
    Camera, CameraKind, ForceId, GeoPoint, ReadErrorCode, Roundabout, StoredRead, Timestamp,
};

/// Generated messages and services of package `nadc.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("nadc.v1");
}

pub use v1 as pb;

pub mod governance;
pub mod hotlists;
pub mod log;

/// The encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/nadc_descriptor.bin"));

/// Converts a core timestamp to the wire form.
pub fn to_pb_time(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Converts a wire timestamp to a core one (milliseconds, truncated), or
/// `None` if it is out of the supported range.
pub fn from_pb_time(t: &prost_types::Timestamp) -> Option<Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    let ms = t
        .seconds
        .checked_mul(1000)?
        .checked_add(i64::from(t.nanos) / 1_000_000)?;
    (0..=Timestamp::MAX.millis())
        .contains(&ms)
        .then(|| Timestamp::from_millis(ms))
}

impl From<pb::Read> for ReadInput {
    fn from(r: pb::Read) -> Self {
        ReadInput {
            read_id: r.read_id,
            vrm: r.vrm,
            observed_at: r.observed_at.as_ref().and_then(from_pb_time),
            camera_id: r.camera_id,
            lat: r.lat,
            lon: r.lon,
            bearing: r.bearing,
            lane: r.lane,
            confidence: r.confidence,
            make: r.make,
            model: r.model,
            colour: r.colour,
            country: r.country,
            patch_image_ref: r.patch_image_ref,
            overview_image_ref: r.overview_image_ref,
            candidates: r.candidates,
        }
    }
}

/// Whether a wire read's `observed_at` was present but unusable (as opposed
/// to missing), so the error can say which.
pub fn observed_at_out_of_range(r: &pb::Read) -> bool {
    r.observed_at
        .as_ref()
        .is_some_and(|t| from_pb_time(t).is_none())
}

/// The wire form of a per-read error code.
pub fn to_pb_code(c: ReadErrorCode) -> pb::ReadErrorCode {
    use pb::ReadErrorCode as P;
    match c {
        ReadErrorCode::InvalidReadId => P::InvalidReadId,
        ReadErrorCode::InvalidVrm => P::InvalidVrm,
        ReadErrorCode::InvalidTime => P::InvalidTime,
        ReadErrorCode::InvalidPosition => P::InvalidPosition,
        ReadErrorCode::InvalidCamera => P::InvalidCamera,
        ReadErrorCode::InvalidField => P::InvalidField,
        ReadErrorCode::UnknownCamera => P::UnknownCamera,
        ReadErrorCode::NoPosition => P::NoPosition,
        ReadErrorCode::TooOld => P::TooOld,
        ReadErrorCode::InFuture => P::InFuture,
        ReadErrorCode::DuplicateInBatch => P::DuplicateInBatch,
        ReadErrorCode::Malformed => P::Malformed,
    }
}

/// The response metadata key by which a node that refuses for load says
/// how long to wait before retrying, in milliseconds.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// The short name of a wire error code, e.g. `invalid_vrm`.
pub fn code_name(code: i32) -> &'static str {
    use pb::ReadErrorCode as P;
    match P::try_from(code).unwrap_or(P::Unspecified) {
        P::Unspecified => "unspecified",
        P::InvalidReadId => "invalid_read_id",
        P::InvalidVrm => "invalid_vrm",
        P::InvalidTime => "invalid_time",
        P::InvalidPosition => "invalid_position",
        P::InvalidCamera => "invalid_camera",
        P::InvalidField => "invalid_field",
        P::UnknownCamera => "unknown_camera",
        P::NoPosition => "no_position",
        P::TooOld => "too_old",
        P::InFuture => "in_future",
        P::DuplicateInBatch => "duplicate_in_batch",
        P::Malformed => "malformed",
    }
}

/// The wire form of a camera kind.
pub fn to_pb_kind(k: CameraKind) -> pb::CameraKind {
    match k {
        CameraKind::Fixed => pb::CameraKind::Fixed,
        CameraKind::TemporaryFixed => pb::CameraKind::TemporaryFixed,
        CameraKind::Mobile => pb::CameraKind::Mobile,
        CameraKind::Portable => pb::CameraKind::Portable,
        CameraKind::Covert => pb::CameraKind::Covert,
        CameraKind::Overt => pb::CameraKind::Overt,
    }
}

fn from_pb_kind(k: i32) -> Result<CameraKind, CameraError> {
    match pb::CameraKind::try_from(k) {
        Ok(pb::CameraKind::Fixed) => Ok(CameraKind::Fixed),
        Ok(pb::CameraKind::TemporaryFixed) => Ok(CameraKind::TemporaryFixed),
        Ok(pb::CameraKind::Mobile) => Ok(CameraKind::Mobile),
        Ok(pb::CameraKind::Portable) => Ok(CameraKind::Portable),
        Ok(pb::CameraKind::Covert) => Ok(CameraKind::Covert),
        Ok(pb::CameraKind::Overt) => Ok(CameraKind::Overt),
        Ok(pb::CameraKind::Unspecified) | Err(_) => Err(CameraError::BadKind(format!("code {k}"))),
    }
}

/// Builds a core camera from the wire, owned by `force` (from the caller's
/// certificate; the message's own `force` field is ignored), and validates it.
pub fn camera_from_pb(c: pb::Camera, force: ForceId) -> Result<Camera, CameraError> {
    let roundabout = match pb::Roundabout::try_from(c.roundabout) {
        Ok(pb::Roundabout::Entry) => Some(Roundabout::Entry),
        Ok(pb::Roundabout::Exit) => Some(Roundabout::Exit),
        Ok(pb::Roundabout::Unspecified) => None,
        Err(_) => return Err(CameraError::BadRoundabout(format!("code {}", c.roundabout))),
    };
    let lanes = match c.lanes {
        None => None,
        Some(l) => Some(u8::try_from(l).map_err(|_| CameraError::BadLanes(l))?),
    };
    let camera = Camera {
        force,
        camera_id: c.camera_id.trim().to_string(),
        position: GeoPoint::new(c.lat, c.lon)?,
        bearing: c
            .bearing
            .map(nadc_core::camera::validate_bearing)
            .transpose()?,
        kind: from_pb_kind(c.kind)?,
        lanes,
        description: c.description.filter(|d| !d.trim().is_empty()),
        covers_hard_shoulder: c.covers_hard_shoulder,
        roundabout,
        range_m: c.range_m,
    };
    camera.validate()?;
    Ok(camera)
}

/// The wire form of a camera.
pub fn camera_to_pb(c: &Camera) -> pb::Camera {
    pb::Camera {
        camera_id: c.camera_id.clone(),
        lat: c.position.lat(),
        lon: c.position.lon(),
        bearing: c.bearing.map(f64::from),
        kind: to_pb_kind(c.kind) as i32,
        lanes: c.lanes.map(u32::from),
        description: c.description.clone(),
        covers_hard_shoulder: c.covers_hard_shoulder,
        roundabout: match c.roundabout {
            None => pb::Roundabout::Unspecified,
            Some(Roundabout::Entry) => pb::Roundabout::Entry,
            Some(Roundabout::Exit) => pb::Roundabout::Exit,
        } as i32,
        range_m: c.range_m,
        force: c.force.to_string(),
    }
}

/// A result row for a stored read, with provenance naming `node`.
pub fn row_from_stored(s: &StoredRead, node: &str) -> pb::ReadRow {
    row_from_owned(s.clone(), node)
}

/// [`row_from_stored`] taking the read: its strings move into the row
/// rather than being copied (a large answer builds one row per read).
pub fn row_from_owned(s: StoredRead, node: &str) -> pb::ReadRow {
    let StoredRead {
        seq,
        force,
        received_at,
        position,
        read: r,
    } = s;
    let position_from_read = r.position.is_some();
    pb::ReadRow {
        vrm: r.vrm.into(),
        vrm_raw: r.vrm_raw,
        lat: position.lat(),
        lon: position.lon(),
        bearing: r.bearing.map(u32::from),
        lane: r.lane.map(u32::from),
        confidence: r.confidence,
        make: r.make,
        model: r.model,
        colour: r.colour,
        country: r.country,
        patch_image_ref: r.patch_image_ref,
        overview_image_ref: r.overview_image_ref,
        candidates: r.candidates,
        provenance: Some(pb::Provenance {
            owning_force: force.into(),
            camera_id: r.camera_id,
            bof_read_id: r.read_id,
            observed_at: Some(to_pb_time(r.observed_at)),
            received_at: Some(to_pb_time(received_at)),
            node: node.to_string(),
            seq,
            position_from_read,
        }),
        areas: Vec::new(),
        r#match: None,
        mou_consult: false,
    }
}

/// The wire form of how a VRM matched.
pub fn match_to_pb(m: &nadc_core::vrm_match::MatchKind) -> pb::VrmMatch {
    use nadc_core::vrm_match::MatchKind as M;
    use pb::vrm_match::Kind;
    let (kind, positions, distance) = match m {
        M::Exact => (Kind::Exact, Vec::new(), 0),
        M::Confusable { positions } => (
            Kind::Confusable,
            positions.iter().map(|p| *p as u32).collect(),
            0,
        ),
        M::Edits { distance } => (Kind::Edits, Vec::new(), u32::from(*distance)),
        M::Wildcard => (Kind::Wildcard, Vec::new(), 0),
    };
    pb::VrmMatch {
        kind: kind as i32,
        positions,
        distance,
        label: m.label(),
    }
}

/// How a VRM matched, from its wire form (`None` for a kind this build
/// does not know, or an out-of-range distance).
pub fn match_from_pb(m: &pb::VrmMatch) -> Option<nadc_core::vrm_match::MatchKind> {
    use nadc_core::vrm_match::MatchKind as M;
    use pb::vrm_match::Kind;
    Some(match Kind::try_from(m.kind).ok()? {
        Kind::Exact => M::Exact,
        Kind::Confusable => M::Confusable {
            positions: m.positions.iter().map(|p| *p as usize).collect(),
        },
        Kind::Edits => M::Edits {
            distance: u8::try_from(m.distance).ok()?,
        },
        Kind::Wildcard => M::Wildcard,
        Kind::Unspecified => return None,
    })
}

impl fmt::Debug for pb::Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Read")
            .field("read_id", &self.read_id)
            .field("vrm", &nadc_core::vrm::redact(&self.vrm))
            .field("observed_at", &self.observed_at)
            .field("camera_id", &self.camera_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ReadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadRow")
            .field("vrm", &nadc_core::vrm::redact(&self.vrm))
            .field("provenance", &self.provenance)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::VrmTimelineRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VrmTimelineRequest")
            .field("vrm", &nadc_core::vrm::redact(&self.vrm))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("limit", &self.limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vrm_match_survives_the_wire() {
        use nadc_core::vrm_match::MatchKind as M;
        for m in [
            M::Exact,
            M::Confusable {
                positions: vec![2, 5],
            },
            M::Edits { distance: 1 },
            M::Wildcard,
        ] {
            assert_eq!(match_from_pb(&match_to_pb(&m)), Some(m));
        }
        assert_eq!(match_from_pb(&pb::VrmMatch::default()), None);
    }

    #[test]
    fn time_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-24T08:15:00.250Z").unwrap();
        assert_eq!(from_pb_time(&to_pb_time(t)), Some(t));
        let bad = prost_types::Timestamp {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(from_pb_time(&bad), None);
        let bad = prost_types::Timestamp {
            seconds: 5,
            nanos: -1,
        };
        assert_eq!(from_pb_time(&bad), None);
    }

    #[test]
    fn debug_redacts_plates() {
        let r = pb::Read {
            vrm: "AB12CDE".into(),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("12CDE"));
        let q = pb::VrmTimelineRequest {
            vrm: "AB12CDE".into(),
            ..Default::default()
        };
        assert!(!format!("{q:?}").contains("12CDE"));
    }

    #[test]
    fn camera_round_trip_and_force_from_caller() {
        let avon = ForceId::new("AVON").unwrap();
        let wire = pb::Camera {
            camera_id: "C1".into(),
            lat: 51.5,
            lon: -2.5,
            bearing: Some(10.0),
            kind: pb::CameraKind::Mobile as i32,
            lanes: Some(2),
            roundabout: pb::Roundabout::Exit as i32,
            force: "KENT".into(),
            ..Default::default()
        };
        let cam = camera_from_pb(wire, avon.clone()).unwrap();
        assert_eq!(cam.force, avon);
        assert_eq!(cam.kind, CameraKind::Mobile);
        let back = camera_to_pb(&cam);
        assert_eq!(back.force, "AVON");
        assert_eq!(back.roundabout, pb::Roundabout::Exit as i32);
        let bad = pb::Camera {
            camera_id: "C2".into(),
            lat: 1.0,
            lon: 1.0,
            ..Default::default()
        };
        assert!(
            camera_from_pb(bad, avon)
                .unwrap_err()
                .to_string()
                .contains("kind")
        );
    }
}
