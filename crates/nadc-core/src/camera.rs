//! Cameras (ANPR sources) registered by a force.
//!
//! A camera is identified by its force and its source id. A read without
//! its own coordinates takes its camera's position; a mobile or portable
//! camera's reads must carry their own GPS position.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::geo::{GeoError, GeoPoint};
use crate::identity::ForceId;

/// Longest camera/source id accepted, in bytes.
pub const MAX_CAMERA_ID_LEN: usize = 64;

/// What kind of deployment a camera is (NAS terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraKind {
    /// Permanently mounted.
    Fixed,
    /// Mounted for a period at one place.
    TemporaryFixed,
    /// In a vehicle; reads carry their own GPS.
    Mobile,
    /// Set up by an officer anywhere; reads carry their own GPS.
    Portable,
    /// Covert deployment.
    Covert,
    /// Overt deployment.
    Overt,
}

impl CameraKind {
    const NAMES: [(&'static str, CameraKind); 6] = [
        ("fixed", CameraKind::Fixed),
        ("temporary_fixed", CameraKind::TemporaryFixed),
        ("mobile", CameraKind::Mobile),
        ("portable", CameraKind::Portable),
        ("covert", CameraKind::Covert),
        ("overt", CameraKind::Overt),
    ];

    /// The name used in files and the API.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("fixed")
    }

    /// Whether the camera moves, so its reads must carry their own position.
    pub fn moves(self) -> bool {
        matches!(self, CameraKind::Mobile | CameraKind::Portable)
    }
}

impl FromStr for CameraKind {
    type Err = CameraError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == norm)
            .map(|(_, k)| *k)
            .ok_or_else(|| CameraError::BadKind(s.to_string()))
    }
}

impl fmt::Display for CameraKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a camera reads vehicles entering or leaving a roundabout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Roundabout {
    /// Reads vehicles entering the roundabout.
    Entry,
    /// Reads vehicles leaving the roundabout.
    Exit,
}

impl FromStr for Roundabout {
    type Err = CameraError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "entry" => Ok(Roundabout::Entry),
            "exit" => Ok(Roundabout::Exit),
            _ => Err(CameraError::BadRoundabout(s.to_string())),
        }
    }
}

impl Roundabout {
    /// The name used in files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Roundabout::Entry => "entry",
            Roundabout::Exit => "exit",
        }
    }
}

/// Why a camera record was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    /// Empty, too long or with control characters.
    #[error("camera_id {0:?} is invalid: 1 to 64 printable characters")]
    BadId(String),
    /// Not a known kind.
    #[error(
        "camera kind {0:?} is unknown: expected fixed, temporary_fixed, mobile, portable, covert or overt"
    )]
    BadKind(String),
    /// Not entry/exit.
    #[error("roundabout {0:?} is invalid: expected entry or exit")]
    BadRoundabout(String),
    /// Bearing outside 0..360.
    #[error("bearing {0} is invalid: degrees from 0 to 359")]
    BadBearing(f64),
    /// Lanes outside 1..=16.
    #[error("lanes {0} is invalid: 1 to 16")]
    BadLanes(u32),
    /// Range outside 1..=1000 m.
    #[error("range_m {0} is invalid: 1 to 1000 metres")]
    BadRange(u32),
    /// Position invalid.
    #[error("camera position: {0}")]
    Position(#[from] GeoError),
    /// Description too long.
    #[error("description is too long: {0} bytes (at most 512)")]
    DescriptionTooLong(usize),
    /// Description with control or invisible formatting characters.
    #[error("description contains {0}")]
    DescriptionText(crate::text::TextError),
}

/// A camera registered by a force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// The owning force (from the registering BOF's certificate).
    pub force: ForceId,
    /// The force's source id for the camera.
    pub camera_id: String,
    /// Where the camera is (for a mobile camera: its base, informational only).
    pub position: GeoPoint,
    /// Direction the camera reads, degrees clockwise from north.
    pub bearing: Option<u16>,
    /// Deployment kind.
    pub kind: CameraKind,
    /// Lanes covered.
    pub lanes: Option<u8>,
    /// Free-text description of the site.
    pub description: Option<String>,
    /// Whether the camera covers the hard shoulder.
    pub covers_hard_shoulder: Option<bool>,
    /// Entry to or exit from a roundabout.
    pub roundabout: Option<Roundabout>,
    /// Reading range in metres.
    pub range_m: Option<u32>,
}

/// Checks a camera/source id: 1 to 64 bytes, no control characters.
pub fn validate_camera_id(id: &str) -> Result<(), CameraError> {
    if id.is_empty() || id.len() > MAX_CAMERA_ID_LEN || id.chars().any(char::is_control) {
        return Err(CameraError::BadId(id.to_string()));
    }
    Ok(())
}

/// Checks a bearing in degrees and returns it as whole degrees 0..360.
pub fn validate_bearing(b: f64) -> Result<u16, CameraError> {
    if !b.is_finite() || !(0.0..360.0).contains(&b) {
        return Err(CameraError::BadBearing(b));
    }
    Ok((b.round() as u16) % 360)
}

impl Camera {
    /// Checks every field of a camera record.
    pub fn validate(&self) -> Result<(), CameraError> {
        validate_camera_id(&self.camera_id)?;
        if let Some(b) = self.bearing
            && b >= 360
        {
            return Err(CameraError::BadBearing(f64::from(b)));
        }
        if let Some(l) = self.lanes
            && !(1..=16).contains(&l)
        {
            return Err(CameraError::BadLanes(u32::from(l)));
        }
        if let Some(r) = self.range_m
            && !(1..=1000).contains(&r)
        {
            return Err(CameraError::BadRange(r));
        }
        if let Some(d) = &self.description
            && d.len() > 512
        {
            return Err(CameraError::DescriptionTooLong(d.len()));
        }
        if let Some(d) = &self.description {
            crate::text::check_free_text(d).map_err(CameraError::DescriptionText)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> Camera {
        Camera {
            force: ForceId::new("AVON").unwrap(),
            camera_id: "M5-J19-N".into(),
            position: GeoPoint::new(51.48, -2.69).unwrap(),
            bearing: Some(45),
            kind: CameraKind::Fixed,
            lanes: Some(3),
            description: None,
            covers_hard_shoulder: Some(true),
            roundabout: None,
            range_m: Some(30),
        }
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(
            "Temporary-Fixed".parse::<CameraKind>().unwrap(),
            CameraKind::TemporaryFixed
        );
        assert!(
            "drone"
                .parse::<CameraKind>()
                .unwrap_err()
                .to_string()
                .contains("drone")
        );
        for (n, k) in CameraKind::NAMES {
            assert_eq!(k.as_str(), n);
        }
    }

    #[test]
    fn validation() {
        assert!(camera().validate().is_ok());
        let mut c = camera();
        c.lanes = Some(0);
        assert_eq!(c.validate(), Err(CameraError::BadLanes(0)));
        let mut c = camera();
        c.camera_id = String::new();
        assert!(c.validate().is_err());
        let mut c = camera();
        c.description = Some("M5 \u{1b}[2J junction".into());
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "description contains control characters: '\\u{1b}' at position 4"
        );
        c.description = Some("M5 <b>junction</b> \u{202e}".into());
        assert!(matches!(c.validate(), Err(CameraError::DescriptionText(_))));
        c.description = Some("M5 <b>junction</b> = north".into());
        assert!(c.validate().is_ok());
        assert!(validate_bearing(360.0).is_err());
        assert_eq!(validate_bearing(359.4).unwrap(), 359);
    }
}
