//! The encoding of a read record (the value in the `reads` column family),
//! of a registered camera, and of an authorisation.
//!
//! A record is one format byte ([`FORMAT_V1`]) followed by the postcard
//! encoding of (force, received_at, position, read). The sequence number is
//! not repeated: it is in the key.

use nadc_core::access::Authorisation;
use nadc_core::{Camera, ForceId, GeoPoint, Read, StoredRead, Timestamp};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The current record format.
pub const FORMAT_V1: u8 = 1;

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

/// Appends the encoding of a record to `out`, and gives `out` back.
pub fn encode_read_into(
    mut out: Vec<u8>,
    force: &ForceId,
    received_at: Timestamp,
    position: GeoPoint,
    read: &Read,
) -> Result<Vec<u8>, StoreError> {
    out.push(FORMAT_V1);
    postcard::to_extend(
        &RecordRef {
            force,
            received_at,
            position,
            read,
        },
        out,
    )
    .map_err(|e| StoreError::Corrupt {
        what: "record encoding",
        detail: e.to_string(),
    })
}

/// Decodes a record stored under sequence number `seq`.
pub fn decode_read(seq: u64, bytes: &[u8]) -> Result<StoredRead, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "reads",
        detail,
    };
    match bytes.split_first() {
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
        let back = decode_read(7, bytes).unwrap();
        assert_eq!(back.seq, 7);
        assert_eq!(back.force, force);
        assert_eq!(back.read, read);
        assert_eq!(back.position, pos);
        assert!(
            decode_read(7, &[9, 1, 2])
                .unwrap_err()
                .to_string()
                .contains("unknown format 9")
        );
        assert!(decode_read(7, &bytes[..bytes.len() / 2]).is_err());
    }
}
