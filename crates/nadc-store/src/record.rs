//! The encoding of a read record (the value of its entries in the `geo`
//! and `vrm_by_day` column families), of a registered camera, and of an
//! authorisation.
//!
//! A record ([`FORMAT_V3`]) is one format byte; the position as two
//! big-endian `i32` (micro-degrees of latitude, then longitude), read
//! without decoding the rest by the live clone check and the geographic
//! filter; then the postcard encoding of its head (force, camera id, VRM),
//! read without the rest by the camera searches and convoy analysis; then
//! of the rest. What a key already says is not repeated: the sequence
//! number and the capture time are in every key that holds a record, so
//! decoding takes them from the key. The raw VRM is kept only where it
//! differs from the normalised one, and the time received as its distance
//! from the capture time. Records of the first layout ([`FORMAT_V1`], in
//! `reads`: the postcard encoding of (force, received_at, position,
//! read)) still decode, for the move to this layout.

use nadc_core::access::Authorisation;
use nadc_core::{Camera, ForceId, GeoPoint, Read, StoredRead, Timestamp, Vrm};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The record format of the first layout (`reads` keyed by day and
/// sequence number).
pub const FORMAT_V1: u8 = 1;
/// The current record format.
pub const FORMAT_V3: u8 = 3;

/// The head of a record: what the camera searches filter on.
#[derive(Serialize, Deserialize)]
pub struct Head<'a> {
    /// The owning force.
    pub force: &'a str,
    /// The camera id.
    pub camera_id: &'a str,
    /// The normalised VRM.
    pub vrm: &'a str,
}

/// The read's own GPS position, against the record's position (its own,
/// else its camera's).
#[derive(Serialize, Deserialize)]
enum Own {
    None,
    Same,
    Other(GeoPoint),
}

#[derive(Serialize)]
struct RestRef<'a> {
    read_id: &'a str,
    vrm_raw: Option<&'a str>,
    received_after_ms: i64,
    own: Own,
    bearing: Option<u16>,
    lane: Option<u8>,
    confidence: Option<f32>,
    make: &'a Option<String>,
    model: &'a Option<String>,
    colour: &'a Option<String>,
    country: &'a Option<String>,
    patch_image_ref: &'a Option<String>,
    overview_image_ref: &'a Option<String>,
    candidates: &'a [String],
}

#[derive(Deserialize)]
struct Rest {
    read_id: String,
    vrm_raw: Option<String>,
    received_after_ms: i64,
    own: Own,
    bearing: Option<u16>,
    lane: Option<u8>,
    confidence: Option<f32>,
    make: Option<String>,
    model: Option<String>,
    colour: Option<String>,
    country: Option<String>,
    patch_image_ref: Option<String>,
    overview_image_ref: Option<String>,
    candidates: Vec<String>,
}

/// A record of the first layout, as it was written (tests write one to
/// check it still decodes).
#[cfg(test)]
#[derive(Serialize)]
struct RecordRef<'a> {
    force: &'a ForceId,
    received_at: Timestamp,
    position: GeoPoint,
    read: &'a Read,
}

#[derive(Deserialize)]
struct Record {
    force: ForceId,
    received_at: Timestamp,
    position: GeoPoint,
    read: Read,
}

fn encoding(e: postcard::Error) -> StoreError {
    StoreError::Corrupt {
        what: "record encoding",
        detail: e.to_string(),
    }
}

/// Appends the encoding of a record to `out`, and gives `out` back.
pub fn encode_read_into(
    mut out: Vec<u8>,
    force: &ForceId,
    received_at: Timestamp,
    position: GeoPoint,
    read: &Read,
) -> Result<Vec<u8>, StoreError> {
    out.push(FORMAT_V3);
    out.extend_from_slice(&position.lat_e6().to_be_bytes());
    out.extend_from_slice(&position.lon_e6().to_be_bytes());
    let out = postcard::to_extend(
        &Head {
            force: force.as_str(),
            camera_id: &read.camera_id,
            vrm: read.vrm.as_str(),
        },
        out,
    )
    .map_err(encoding)?;
    let own = match read.position {
        None => Own::None,
        Some(p) if p == position => Own::Same,
        Some(p) => Own::Other(p),
    };
    postcard::to_extend(
        &RestRef {
            read_id: &read.read_id,
            vrm_raw: (read.vrm_raw != read.vrm.as_str()).then_some(read.vrm_raw.as_str()),
            received_after_ms: received_at.millis() - read.observed_at.millis(),
            own,
            bearing: read.bearing,
            lane: read.lane,
            confidence: read.confidence,
            make: &read.make,
            model: &read.model,
            colour: &read.colour,
            country: &read.country,
            patch_image_ref: &read.patch_image_ref,
            overview_image_ref: &read.overview_image_ref,
            candidates: &read.candidates,
        },
        out,
    )
    .map_err(encoding)
}

/// Decodes the record of read `seq` captured at `observed_at` (both from
/// its key).
pub fn decode_read(
    seq: u64,
    observed_at: Timestamp,
    bytes: &[u8],
) -> Result<StoredRead, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "reads",
        detail,
    };
    match bytes.split_first() {
        Some((&FORMAT_V3, _)) => {
            let position =
                position(bytes).ok_or_else(|| corrupt(format!("record {seq}: bad position")))?;
            let (head, rest): (Head<'_>, &[u8]) = postcard::take_from_bytes(&bytes[9..])
                .map_err(|e| corrupt(format!("record {seq}: {e}")))?;
            let r: Rest =
                postcard::from_bytes(rest).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
            let bad = |what: &str| corrupt(format!("record {seq}: bad {what}"));
            let vrm = Vrm::normalise(head.vrm).map_err(|_| bad("VRM"))?;
            let force = ForceId::new(head.force).map_err(|_| bad("force"))?;
            Ok(StoredRead {
                seq,
                force,
                received_at: observed_at.plus_millis(r.received_after_ms),
                position,
                read: Read {
                    read_id: r.read_id,
                    vrm_raw: r.vrm_raw.unwrap_or_else(|| vrm.as_str().to_string()),
                    vrm,
                    observed_at,
                    camera_id: head.camera_id.to_string(),
                    position: match r.own {
                        Own::None => None,
                        Own::Same => Some(position),
                        Own::Other(p) => Some(p),
                    },
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
                },
            })
        }
        Some((&FORMAT_V1, body)) => {
            let r: Record =
                postcard::from_bytes(body).map_err(|e| corrupt(format!("record {seq}: {e}")))?;
            Ok(StoredRead {
                seq,
                force: r.force,
                received_at: r.received_at,
                position: r.position,
                read: r.read,
            })
        }
        Some((v, _)) => Err(corrupt(format!("record {seq}: unknown format {v}"))),
        None => Err(corrupt(format!("record {seq}: empty"))),
    }
}

/// The position of a record of the current format, read from its fixed
/// place without decoding the rest.
pub fn position(bytes: &[u8]) -> Option<GeoPoint> {
    if bytes.first() != Some(&FORMAT_V3) {
        return None;
    }
    let lat = i32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?);
    let lon = i32::from_be_bytes(bytes.get(5..9)?.try_into().ok()?);
    GeoPoint::from_micro(lat, lon).ok()
}

/// The head of a record of the current format (force, camera, VRM),
/// borrowed, without decoding the rest.
pub fn head(bytes: &[u8]) -> Option<Head<'_>> {
    if bytes.first() != Some(&FORMAT_V3) {
        return None;
    }
    postcard::take_from_bytes(bytes.get(9..)?)
        .ok()
        .map(|(h, _)| h)
}

/// Encodes any other stored value (hotlists, entries, alerts, alert
/// states) with postcard.
pub fn encode<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// Decodes a value written by [`encode`].
pub fn decode<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// A hotlist as stored before lists had trigger rules (postcard has no
/// field tags: the rules were appended, so an older record ends early).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct HotlistBeforeRules {
    id: nadc_core::hotlist::HotlistId,
    purpose: String,
    description: String,
    fuzzy: nadc_core::hotlist::Fuzzy,
    created_by: String,
    created_at: nadc_core::Timestamp,
}

/// Decodes a stored hotlist, of this version or of the one before trigger
/// rules (read as a list without rules).
pub fn decode_hotlist(bytes: &[u8]) -> Result<nadc_core::hotlist::Hotlist, StoreError> {
    if let Ok(list) = postcard::from_bytes(bytes) {
        return Ok(list);
    }
    let old: HotlistBeforeRules = decode("hotlists", bytes)?;
    Ok(nadc_core::hotlist::Hotlist {
        id: old.id,
        purpose: old.purpose,
        description: old.description,
        fuzzy: old.fuzzy,
        created_by: old.created_by,
        created_at: old.created_at,
        rules: Vec::new(),
    })
}

/// An alert state as stored before outcomes were recorded.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct AlertStateBeforeOutcome {
    state: nadc_core::alert::Verification,
    by: String,
    by_force: ForceId,
    at: nadc_core::Timestamp,
    note: String,
}

/// Decodes a stored alert state, of this version or of the one before
/// outcomes (read as one without an outcome).
pub fn decode_alert_state(bytes: &[u8]) -> Result<nadc_core::alert::AlertState, StoreError> {
    if let Ok(state) = postcard::from_bytes(bytes) {
        return Ok(state);
    }
    let old: AlertStateBeforeOutcome = decode("alert_state", bytes)?;
    Ok(nadc_core::alert::AlertState {
        state: old.state,
        by: old.by,
        by_force: old.by_force,
        at: old.at,
        note: old.note,
        outcome: None,
    })
}

/// Encodes a camera.
pub fn encode_camera(c: &Camera) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(c).map_err(|e| StoreError::Corrupt {
        what: "camera encoding",
        detail: e.to_string(),
    })
}

/// Decodes a camera.
pub fn decode_camera(bytes: &[u8]) -> Result<Camera, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        what: "cameras",
        detail: e.to_string(),
    })
}

/// The format of an authorisation stored under a force-scoped key: one
/// format byte, then the postcard encoding of [`Authorisation`].
pub const AUTHORISATION_V1: u8 = 1;

/// Encodes an authorisation for a force-scoped key.
pub fn encode_authorisation(a: &Authorisation) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![AUTHORISATION_V1];
    out.extend(encode("authorisation", a)?);
    Ok(out)
}

/// Decodes an authorisation stored under a force-scoped key.
pub fn decode_authorisation(bytes: &[u8]) -> Result<Authorisation, StoreError> {
    match bytes.split_first() {
        Some((&AUTHORISATION_V1, body)) => decode("authorisations", body),
        Some((v, _)) => Err(StoreError::Corrupt {
            what: "authorisations",
            detail: format!("unknown format {v}"),
        }),
        None => Err(StoreError::Corrupt {
            what: "authorisations",
            detail: "empty".into(),
        }),
    }
}

/// An authorisation as stored under its id alone, before ids were scoped
/// by force and authorisations could be revoked: postcard, no format byte.
#[derive(Deserialize)]
struct UnscopedAuthorisation {
    id: String,
    granted_by: String,
    force: ForceId,
    granted_at: Timestamp,
    case_ref: String,
    purpose: String,
    user: String,
    data_from: Timestamp,
    data_to: Timestamp,
    expires_at: Timestamp,
    reason: String,
}

/// Decodes an authorisation stored in the layout before force scoping
/// (never revoked: there was no revocation then).
pub fn decode_unscoped_authorisation(bytes: &[u8]) -> Result<Authorisation, StoreError> {
    let u: UnscopedAuthorisation = decode("authorisations (unscoped)", bytes)?;
    Ok(Authorisation {
        id: u.id,
        granted_by: u.granted_by,
        force: u.force,
        granted_at: u.granted_at,
        case_ref: u.case_ref,
        purpose: u.purpose,
        user: u.user,
        data_from: u.data_from,
        data_to: u.data_to,
        expires_at: u.expires_at,
        reason: u.reason,
        revoked: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nadc_core::read::ReadInput;

    #[test]
    fn a_hotlist_stored_before_rules_reads_as_one_without_rules() {
        use nadc_core::hotlist::{Fuzzy, Hotlist, HotlistId};
        let old = HotlistBeforeRules {
            id: HotlistId::new(ForceId::new("AVON").unwrap(), "stolen").unwrap(),
            purpose: "serious crime".into(),
            description: "d".into(),
            fuzzy: Fuzzy::OFF,
            created_by: "hm".into(),
            created_at: Timestamp::from_millis(5),
        };
        let list = decode_hotlist(&encode("hotlist", &old).unwrap()).unwrap();
        assert_eq!(list.id, old.id);
        assert_eq!(list.created_at, old.created_at);
        assert!(list.rules.is_empty());
        // And this version's, with a rule, round-trips.
        let with = Hotlist {
            rules: vec![nadc_core::trigger::TriggerRule {
                label: "centre".into(),
                area: nadc_core::trigger::RuleArea::Circle {
                    centre: nadc_core::GeoPoint::new(51.45, -2.58).unwrap(),
                    radius_m: 800,
                },
                from: None,
                until: Some(Timestamp::from_millis(9)),
                start_hour: 22,
                end_hour: 6,
            }],
            ..list
        };
        assert_eq!(
            decode_hotlist(&encode("hotlist", &with).unwrap()).unwrap(),
            with
        );
    }

    #[test]
    fn an_alert_state_stored_before_outcomes_reads_as_one_without() {
        use nadc_core::alert::{AlertState, HitOutcome, Verification};
        let old = AlertStateBeforeOutcome {
            state: Verification::Confirmed,
            by: "olly".into(),
            by_force: ForceId::new("AVON").unwrap(),
            at: Timestamp::from_millis(7),
            note: "image matches".into(),
        };
        let got = decode_alert_state(&encode("alert_state", &old).unwrap()).unwrap();
        assert_eq!((got.state, got.outcome), (Verification::Confirmed, None));
        assert_eq!(got.note, "image matches");
        let new = AlertState {
            outcome: Some(HitOutcome::Arrested),
            ..got
        };
        assert_eq!(
            decode_alert_state(&encode("alert_state", &new).unwrap()).unwrap(),
            new
        );
    }

    #[test]
    fn record_round_trip() {
        let read = ReadInput {
            read_id: "r1".into(),
            vrm: "ab12 cde".into(),
            observed_at: Some(Timestamp::from_millis(1_700_000_000_000)),
            camera_id: "C1".into(),
            lat: Some(51.5),
            lon: Some(-0.1),
            confidence: Some(91.0),
            make: Some("Ford".into()),
            candidates: vec!["AB12CDF".into()],
            ..Default::default()
        }
        .validate()
        .unwrap();
        let force = ForceId::new("MET").unwrap();
        let pos = read.position.unwrap();
        // Appended after whatever the buffer already holds.
        let out = encode_read_into(
            b"before".to_vec(),
            &force,
            Timestamp::from_millis(1_700_000_000_500),
            pos,
            &read,
        )
        .unwrap();
        let bytes = out.strip_prefix(b"before").unwrap();
        let back = decode_read(7, read.observed_at, bytes).unwrap();
        assert_eq!(back.seq, 7);
        assert_eq!(back.force, force);
        assert_eq!(back.read, read);
        assert_eq!(back.position, pos);
        assert!(
            decode_read(7, read.observed_at, &[9, 1, 2])
                .unwrap_err()
                .to_string()
                .contains("unknown format 9")
        );
        assert!(decode_read(7, read.observed_at, &bytes[..bytes.len() / 2]).is_err());
        assert_eq!(position(bytes), Some(pos));
        let h = head(bytes).unwrap();
        assert_eq!((h.force, h.camera_id, h.vrm), ("MET", "C1", "AB12CDE"));
        // A read as its VRM was read, at its camera's position (no GPS of
        // its own), received before it was taken (a camera clock ahead);
        // and one whose own position is not the record's.
        let camera = GeoPoint::new(51.4, -2.6).unwrap();
        let plain = Read {
            vrm_raw: "AB12CDE".into(),
            position: None,
            ..read.clone()
        };
        let elsewhere = Read {
            position: Some(GeoPoint::new(51.41, -2.61).unwrap()),
            ..read.clone()
        };
        for r in [plain, elsewhere] {
            let early = r.observed_at.plus_millis(-2_000);
            let bytes = encode_read_into(Vec::new(), &force, early, camera, &r).unwrap();
            let back = decode_read(9, r.observed_at, &bytes).unwrap();
            assert_eq!(
                (back.read, back.position, back.received_at),
                (r, camera, early)
            );
        }
        // A record of the first layout decodes to the same read.
        let mut v1 = vec![FORMAT_V1];
        v1.extend(
            postcard::to_stdvec(&RecordRef {
                force: &force,
                received_at: Timestamp::from_millis(1_700_000_000_500),
                position: pos,
                read: &read,
            })
            .unwrap(),
        );
        let old = decode_read(7, Timestamp::EPOCH, &v1).unwrap();
        assert_eq!((old.force, old.read, old.position), (force, read, pos));
        assert_eq!(position(&v1), None, "no fixed place in the first layout");
    }
}
