//! Reads: a VRM seen at a time and place by a camera, with the metadata a
//! capture record carries, and the per-read errors ingest reports.
//!
//! [`ReadInput`] is what arrives (from gRPC, CSV or NDJSON), unvalidated.
//! [`ReadInput::validate`] turns it into a [`Read`] or a [`ReadError`] whose
//! code and message say exactly what is wrong. The node then resolves the
//! position against the camera registry and stamps the owning force and the
//! received time, giving a [`StoredRead`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::camera::{validate_bearing, validate_camera_id};
use crate::geo::GeoPoint;
use crate::identity::ForceId;
use crate::time::Timestamp;
use crate::vrm::Vrm;

/// Longest BOF read id accepted, in bytes.
pub const MAX_READ_ID_LEN: usize = 128;
/// Longest make/model/colour text, in bytes.
pub const MAX_DETAIL_LEN: usize = 64;
/// Longest image reference, in bytes.
pub const MAX_IMAGE_REF_LEN: usize = 512;
/// Most alternative OCR candidates kept per read.
pub const MAX_CANDIDATES: usize = 8;

/// The class of a per-read error. Stable: BOFs act on these codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadErrorCode {
    /// The read id is missing, too long or has control characters.
    InvalidReadId,
    /// The VRM is empty, too long or has characters other than A-Z, 0-9
    /// and the separators (space, `-`, `.`).
    InvalidVrm,
    /// The capture time is missing or malformed.
    InvalidTime,
    /// Latitude/longitude out of range, not a number, or only one given.
    InvalidPosition,
    /// The camera id is missing or malformed.
    InvalidCamera,
    /// Another field (bearing, lane, confidence, text lengths, control or
    /// invisible characters in text, a candidate VRM) is invalid.
    InvalidField,
    /// No position on the read and its camera is not registered.
    UnknownCamera,
    /// The read's camera moves (mobile/portable) and the read has no GPS.
    NoPosition,
    /// Captured longer ago than the node's retention period.
    TooOld,
    /// Captured further in the future than the clock tolerance allows.
    InFuture,
    /// The same read id appears earlier in the same batch.
    DuplicateInBatch,
    /// The read's bytes are not valid (e.g. not UTF-8) or the row is malformed.
    Malformed,
}

impl ReadErrorCode {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadErrorCode::InvalidReadId => "invalid_read_id",
            ReadErrorCode::InvalidVrm => "invalid_vrm",
            ReadErrorCode::InvalidTime => "invalid_time",
            ReadErrorCode::InvalidPosition => "invalid_position",
            ReadErrorCode::InvalidCamera => "invalid_camera",
            ReadErrorCode::InvalidField => "invalid_field",
            ReadErrorCode::UnknownCamera => "unknown_camera",
            ReadErrorCode::NoPosition => "no_position",
            ReadErrorCode::TooOld => "too_old",
            ReadErrorCode::InFuture => "in_future",
            ReadErrorCode::DuplicateInBatch => "duplicate_in_batch",
            ReadErrorCode::Malformed => "malformed",
        }
    }
}

impl fmt::Display for ReadErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A per-read error: a code to act on and a message naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ReadError {
    /// The class of error.
    pub code: ReadErrorCode,
    /// What exactly is wrong, naming the field and value (never a full VRM).
    pub message: String,
}

impl ReadError {
    /// Builds an error.
    pub fn new(code: ReadErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A read as it arrives, before validation. Every field is optional or
/// free text so that nothing is lost before it can be reported on.
#[derive(Clone, Default, PartialEq)]
pub struct ReadInput {
    /// The BOF's id for the read (unique per force and capture day).
    pub read_id: String,
    /// The VRM as read (raw OCR text).
    pub vrm: String,
    /// Capture time.
    pub observed_at: Option<Timestamp>,
    /// The camera/source id, within the pushing force.
    pub camera_id: String,
    /// Latitude in degrees (both or neither of lat/lon).
    pub lat: Option<f64>,
    /// Longitude in degrees.
    pub lon: Option<f64>,
    /// Direction of travel / camera bearing in degrees.
    pub bearing: Option<f64>,
    /// Lane number.
    pub lane: Option<u32>,
    /// OCR confidence, 0 to 100.
    pub confidence: Option<f32>,
    /// Vehicle make.
    pub make: Option<String>,
    /// Vehicle model.
    pub model: Option<String>,
    /// Vehicle colour.
    pub colour: Option<String>,
    /// Issuing country of the plate, where known.
    pub country: Option<String>,
    /// Reference to the plate patch image.
    pub patch_image_ref: Option<String>,
    /// Reference to the overview image.
    pub overview_image_ref: Option<String>,
    /// Alternative OCR readings.
    pub candidates: Vec<String>,
}

impl fmt::Debug for ReadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadInput")
            .field("read_id", &self.read_id)
            .field("vrm", &crate::vrm::redact(&self.vrm))
            .field("observed_at", &self.observed_at)
            .field("camera_id", &self.camera_id)
            .finish_non_exhaustive()
    }
}

/// A validated read, before the node resolves its position and stamps it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Read {
    /// The BOF's id for the read.
    pub read_id: String,
    /// The normalised VRM.
    pub vrm: Vrm,
    /// The VRM exactly as read.
    pub vrm_raw: String,
    /// Capture time (UTC).
    pub observed_at: Timestamp,
    /// The camera/source id, within the owning force.
    pub camera_id: String,
    /// The read's own GPS position, if it carried one.
    pub position: Option<GeoPoint>,
    /// Bearing in whole degrees.
    pub bearing: Option<u16>,
    /// Lane number.
    pub lane: Option<u8>,
    /// OCR confidence, 0 to 100.
    pub confidence: Option<f32>,
    /// Vehicle make.
    pub make: Option<String>,
    /// Vehicle model.
    pub model: Option<String>,
    /// Vehicle colour.
    pub colour: Option<String>,
    /// Issuing country code.
    pub country: Option<String>,
    /// Plate patch image reference.
    pub patch_image_ref: Option<String>,
    /// Overview image reference.
    pub overview_image_ref: Option<String>,
    /// Alternative OCR readings (raw).
    pub candidates: Vec<String>,
}

impl fmt::Debug for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Read")
            .field("read_id", &self.read_id)
            .field("vrm", &self.vrm)
            .field("observed_at", &self.observed_at)
            .field("camera_id", &self.camera_id)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

fn bad(code: ReadErrorCode, message: impl Into<String>) -> ReadError {
    ReadError::new(code, message)
}

fn opt_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ReadError> {
    let Some(v) = value else { return Ok(None) };
    let v = v.trim().to_string();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > max {
        return Err(bad(
            ReadErrorCode::InvalidField,
            format!("{field} is too long: {} bytes (at most {max})", v.len()),
        ));
    }
    crate::text::check_free_text(&v)
        .map_err(|e| bad(ReadErrorCode::InvalidField, format!("{field} contains {e}")))?;
    Ok(Some(v))
}

impl ReadInput {
    /// Validates every field, returning the first problem found.
    pub fn validate(self) -> Result<Read, ReadError> {
        use ReadErrorCode as C;
        let read_id = self.read_id.trim().to_string();
        if read_id.is_empty() {
            return Err(bad(C::InvalidReadId, "read_id is missing"));
        }
        if read_id.len() > MAX_READ_ID_LEN || read_id.chars().any(char::is_control) {
            return Err(bad(
                C::InvalidReadId,
                format!(
                    "read_id is invalid: 1 to {MAX_READ_ID_LEN} bytes without control characters"
                ),
            ));
        }
        let vrm = Vrm::normalise(&self.vrm).map_err(|e| bad(C::InvalidVrm, e.to_string()))?;
        let observed_at = self
            .observed_at
            .ok_or_else(|| bad(C::InvalidTime, "observed_at is missing"))?;
        let camera_id = self.camera_id.trim().to_string();
        validate_camera_id(&camera_id).map_err(|e| bad(C::InvalidCamera, e.to_string()))?;
        let position = match (self.lat, self.lon) {
            (None, None) => None,
            (Some(lat), Some(lon)) => {
                Some(GeoPoint::new(lat, lon).map_err(|e| bad(C::InvalidPosition, e.to_string()))?)
            }
            (Some(_), None) => return Err(bad(C::InvalidPosition, "lat given without lon")),
            (None, Some(_)) => return Err(bad(C::InvalidPosition, "lon given without lat")),
        };
        let bearing = self
            .bearing
            .map(validate_bearing)
            .transpose()
            .map_err(|e| bad(C::InvalidField, e.to_string()))?;
        let lane = match self.lane {
            None => None,
            Some(l) if (0..=16).contains(&l) => Some(l as u8),
            Some(l) => {
                return Err(bad(
                    C::InvalidField,
                    format!("lane {l} is invalid: 0 to 16"),
                ));
            }
        };
        let confidence = match self.confidence {
            None => None,
            Some(c) if c.is_finite() && (0.0..=100.0).contains(&c) => Some(c),
            Some(c) => {
                return Err(bad(
                    C::InvalidField,
                    format!("confidence {c} is invalid: a number from 0 to 100"),
                ));
            }
        };
        let country = opt_text("country", self.country, 3)?.map(|c| c.to_ascii_uppercase());
        if let Some(c) = &country
            && !c.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(bad(
                C::InvalidField,
                format!("country {c:?} is invalid: 1 to 3 letters (ISO 3166 or UK vehicle code)"),
            ));
        }
        if self.candidates.len() > MAX_CANDIDATES {
            return Err(bad(
                C::InvalidField,
                format!(
                    "{} candidates given (at most {MAX_CANDIDATES})",
                    self.candidates.len()
                ),
            ));
        }
        let mut candidates = Vec::with_capacity(self.candidates.len());
        for c in self.candidates {
            let c = c.trim().to_string();
            if c.is_empty() {
                continue;
            }
            Vrm::normalise(&c).map_err(|e| bad(C::InvalidField, format!("candidate: {e}")))?;
            candidates.push(c);
        }
        Ok(Read {
            read_id,
            vrm,
            vrm_raw: self.vrm,
            observed_at,
            camera_id,
            position,
            bearing,
            lane,
            confidence,
            make: opt_text("make", self.make, MAX_DETAIL_LEN)?,
            model: opt_text("model", self.model, MAX_DETAIL_LEN)?,
            colour: opt_text("colour", self.colour, MAX_DETAIL_LEN)?,
            country,
            patch_image_ref: opt_text("patch_image_ref", self.patch_image_ref, MAX_IMAGE_REF_LEN)?,
            overview_image_ref: opt_text(
                "overview_image_ref",
                self.overview_image_ref,
                MAX_IMAGE_REF_LEN,
            )?,
            candidates,
        })
    }
}

/// Where a stored read lives on its node: its UTC capture day and its
/// node-local sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadRef {
    /// UTC day of capture (days since 1970-01-01).
    pub day: u32,
    /// Sequence number.
    pub seq: u64,
}

/// A read as stored: validated, positioned, and stamped by the node.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRead {
    /// The node-local sequence number the read was stored under.
    pub seq: u64,
    /// The owning force: the force of the BOF certificate that pushed it.
    pub force: ForceId,
    /// When the node received it.
    pub received_at: Timestamp,
    /// Where it was read: its own GPS, else its camera's registered position.
    pub position: GeoPoint,
    /// The read itself.
    pub read: Read,
}

impl StoredRead {
    /// Where this read lives.
    pub fn read_ref(&self) -> ReadRef {
        ReadRef {
            day: self.read.observed_at.day(),
            seq: self.seq,
        }
    }
}

impl fmt::Debug for StoredRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRead")
            .field("seq", &self.seq)
            .field("force", &self.force)
            .field("received_at", &self.received_at)
            .field("position", &self.position)
            .field("read", &self.read)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ReadInput {
        ReadInput {
            read_id: "r-1".into(),
            vrm: "AB12 CDE".into(),
            observed_at: Some(Timestamp::parse_rfc3339("2026-11-24T08:00:00Z").unwrap()),
            camera_id: "CAM1".into(),
            lat: Some(51.45),
            lon: Some(-2.58),
            bearing: Some(90.0),
            lane: Some(1),
            confidence: Some(87.5),
            make: Some(" Ford ".into()),
            ..Default::default()
        }
    }

    fn check(edit: impl FnOnce(&mut ReadInput), code: ReadErrorCode, needle: &str) {
        let mut r = good();
        edit(&mut r);
        let e = r.validate().unwrap_err();
        assert_eq!(e.code, code, "{e}");
        assert!(
            e.message.contains(needle),
            "{:?} lacks {needle:?}",
            e.message
        );
    }

    #[test]
    fn good_read_validates() {
        let r = good().validate().unwrap();
        assert_eq!(r.vrm.as_str(), "AB12CDE");
        assert_eq!(r.vrm_raw, "AB12 CDE");
        assert_eq!(r.make.as_deref(), Some("Ford"));
        assert_eq!(r.bearing, Some(90));
    }

    #[test]
    fn bad_reads_table() {
        use ReadErrorCode as C;
        check(|r| r.read_id.clear(), C::InvalidReadId, "missing");
        check(|r| r.read_id = "x".repeat(200), C::InvalidReadId, "128");
        check(|r| r.vrm.clear(), C::InvalidVrm, "empty");
        check(|r| r.vrm = "AB12ÇDE".into(), C::InvalidVrm, "position 5");
        check(|r| r.observed_at = None, C::InvalidTime, "missing");
        check(|r| r.camera_id.clear(), C::InvalidCamera, "camera_id");
        check(|r| r.lat = Some(f64::NAN), C::InvalidPosition, "latitude");
        check(|r| r.lon = Some(200.0), C::InvalidPosition, "longitude 200");
        check(|r| r.lon = None, C::InvalidPosition, "without lon");
        check(|r| r.bearing = Some(-1.0), C::InvalidField, "bearing");
        check(|r| r.lane = Some(40), C::InvalidField, "lane 40");
        check(
            |r| r.confidence = Some(101.0),
            C::InvalidField,
            "confidence",
        );
        check(
            |r| r.country = Some("G1".into()),
            C::InvalidField,
            "country",
        );
        check(
            |r| r.make = Some("m".repeat(65)),
            C::InvalidField,
            "make is too long",
        );
        check(
            |r| r.candidates = vec!["A€".into()],
            C::InvalidField,
            "candidate",
        );
        check(
            |r| r.vrm = "AB12<script>".into(),
            C::InvalidVrm,
            "'<' at position 5",
        );
        check(
            |r| r.vrm = "AB12=CDE".into(),
            C::InvalidVrm,
            "'=' at position 5",
        );
        check(
            |r| r.candidates = vec!["AB12CDE".into(), "AB1=CDE".into()],
            C::InvalidField,
            "candidate: VRM has character '=' at position 4",
        );
        check(
            |r| r.model = Some("Fo\u{1b}[2Jcus".into()),
            C::InvalidField,
            "model contains control characters: '\\u{1b}' at position 3",
        );
        check(
            |r| r.colour = Some("re\u{202e}d".into()),
            C::InvalidField,
            "colour contains an invisible formatting character: '\\u{202e}' at position 3",
        );
        check(
            |r| r.patch_image_ref = Some("img\u{200b}.jpg".into()),
            C::InvalidField,
            "patch_image_ref contains an invisible formatting character",
        );
    }

    #[test]
    fn debug_never_shows_the_plate() {
        let input = good();
        assert!(!format!("{input:?}").contains("12 CDE"));
        let read = good().validate().unwrap();
        assert!(!format!("{read:?}").contains("12CDE"));
    }
}
