//! The replicated log's messages (`proto/nadc/v1/log.proto`): a batch of
//! validated reads as a node appends it, and back, as a replica applies it.
//!
//! A read goes into the log in its wire form and is validated again when
//! applied. Validation is a pure function of the read, so every replica
//! gets the read the node that took it validated (the round trip is
//! tested below); the checks that depend on the node (its clock, its
//! retention, its camera register) were made once, by that node, and what
//! they decided travels with the read: its position and the time it was
//! received.

use nadc_core::read::{Read, ReadInput};
use nadc_core::{ForceId, GeoPoint, Timestamp};

use crate::{from_pb_time, pb, to_pb_time};

/// The wire form of a validated read (what [`ReadInput::validate`] turns
/// back into the same read).
pub fn read_to_pb(r: &Read) -> pb::Read {
    pb::Read {
        read_id: r.read_id.clone(),
        vrm: r.vrm_raw.clone(),
        observed_at: Some(to_pb_time(r.observed_at)),
        camera_id: r.camera_id.clone(),
        lat: r.position.map(|p| p.lat()),
        lon: r.position.map(|p| p.lon()),
        bearing: r.bearing.map(f64::from),
        lane: r.lane.map(u32::from),
        confidence: r.confidence,
        make: r.make.clone(),
        model: r.model.clone(),
        colour: r.colour.clone(),
        country: r.country.clone(),
        patch_image_ref: r.patch_image_ref.clone(),
        overview_image_ref: r.overview_image_ref.clone(),
        candidates: r.candidates.clone(),
    }
}

/// A batch of reads a node took for `force`, as a log entry.
pub struct LoggedBatch {
    /// The owning force.
    pub force: ForceId,
    /// The node that took it.
    pub origin_node: String,
    /// That node's number for the append.
    pub nonce: u64,
    /// When that node received it.
    pub received_at: Timestamp,
    /// The reads, each with the position it is stored under.
    pub reads: Vec<(Read, GeoPoint)>,
}

impl std::fmt::Debug for LoggedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Reads carry plates: only how many.
        f.debug_struct("LoggedBatch")
            .field("force", &self.force)
            .field("origin_node", &self.origin_node)
            .field("nonce", &self.nonce)
            .field("received_at", &self.received_at)
            .field("reads", &self.reads.len())
            .finish()
    }
}

/// A log entry that cannot be applied: written by another release, or
/// damaged. A replica stops at it rather than skip it.
#[derive(Debug, thiserror::Error)]
#[error("log entry not understood: {0}")]
pub struct BadEntry(pub String);

/// The log entry of `batch`.
pub fn batch_to_entry(batch: &LoggedBatch) -> pb::LogEntry {
    pb::LogEntry {
        entry: Some(pb::log_entry::Entry::Batch(pb::LoggedBatch {
            force: batch.force.as_str().to_string(),
            origin_node: batch.origin_node.clone(),
            nonce: batch.nonce,
            received_at_ms: batch.received_at.millis(),
            reads: batch
                .reads
                .iter()
                .map(|(r, p)| pb::LoggedRead {
                    read: Some(read_to_pb(r)),
                    lat_e6: p.lat_e6(),
                    lon_e6: p.lon_e6(),
                })
                .collect(),
        })),
    }
}

/// What a log entry holds.
#[derive(Debug)]
pub enum Entry {
    /// A batch of reads.
    Batch(LoggedBatch),
}

/// Decodes a log entry.
pub fn entry_from_pb(e: pb::LogEntry) -> Result<Entry, BadEntry> {
    match e.entry {
        Some(pb::log_entry::Entry::Batch(b)) => {
            let force = ForceId::new(&b.force)
                .map_err(|e| BadEntry(format!("force {:?}: {e}", b.force)))?;
            let received_at = (0..=Timestamp::MAX.millis())
                .contains(&b.received_at_ms)
                .then(|| Timestamp::from_millis(b.received_at_ms))
                .ok_or_else(|| BadEntry(format!("received_at_ms {}", b.received_at_ms)))?;
            let reads = b
                .reads
                .into_iter()
                .enumerate()
                .map(|(i, lr)| {
                    let position = GeoPoint::from_micro(lr.lat_e6, lr.lon_e6)
                        .map_err(|e| BadEntry(format!("read {i}: position: {e}")))?;
                    let wire = lr
                        .read
                        .ok_or_else(|| BadEntry(format!("read {i}: missing")))?;
                    if wire.observed_at.as_ref().and_then(from_pb_time).is_none() {
                        return Err(BadEntry(format!("read {i}: observed_at")));
                    }
                    let read = ReadInput::from(wire)
                        .validate()
                        .map_err(|e| BadEntry(format!("read {i}: {}", e.code)))?;
                    Ok((read, position))
                })
                .collect::<Result<_, _>>()?;
            Ok(Entry::Batch(LoggedBatch {
                force,
                origin_node: b.origin_node,
                nonce: b.nonce,
                received_at,
                reads,
            }))
        }
        None => Err(BadEntry("empty entry".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[A-Za-z][A-Za-z0-9 ]{0,12}")
    }

    prop_compose! {
        fn wire_read()(
            read_id in "[a-z0-9-]{1,20}",
            vrm in "[A-Z]{2}[0-9]{2} ?[A-Z]{3}",
            ms in 0i64..4_000_000_000_000,
            camera_id in "[A-Z0-9-]{1,12}",
            pos in proptest::option::of((-89.9f64..89.9, -179.9f64..179.9)),
            bearing in proptest::option::of(0u16..360),
            lane in proptest::option::of(0u32..17),
            confidence in proptest::option::of(0f32..100.0),
            make in opt_text(), model in opt_text(), colour in opt_text(),
            country in proptest::option::of("[A-Z]{1,3}"),
            patch in opt_text(), overview in opt_text(),
            candidates in proptest::collection::vec("[A-Z]{2}[0-9]{2}[A-Z]{3}", 0..4),
        ) -> pb::Read {
            pb::Read {
                read_id, vrm,
                observed_at: Some(to_pb_time(Timestamp::from_millis(ms))),
                camera_id,
                lat: pos.map(|p| p.0), lon: pos.map(|p| p.1),
                bearing: bearing.map(f64::from), lane, confidence,
                make, model, colour, country,
                patch_image_ref: patch, overview_image_ref: overview,
                candidates,
            }
        }
    }

    proptest! {
        /// A read validated by the node that took it is the same read once
        /// a replica has decoded and validated it again.
        #[test]
        fn a_validated_read_survives_the_log(
            wire in wire_read(), lat in -89_000_000i32..89_000_000, lon in -179_000_000i32..179_000_000,
            nonce in any::<u64>(), received in 0i64..4_000_000_000_000,
        ) {
            let Ok(read) = ReadInput::from(wire).validate() else {
                return Ok(());
            };
            let position = GeoPoint::from_micro(lat, lon).unwrap();
            let batch = LoggedBatch {
                force: ForceId::new("AVON").unwrap(),
                origin_node: "node-1".into(),
                nonce,
                received_at: Timestamp::from_millis(received),
                reads: vec![(read.clone(), position)],
            };
            let bytes = prost::Message::encode_to_vec(&batch_to_entry(&batch));
            let decoded: pb::LogEntry = prost::Message::decode(bytes.as_slice()).unwrap();
            let Entry::Batch(back) = entry_from_pb(decoded).unwrap();
            prop_assert_eq!(back.force, batch.force);
            prop_assert_eq!(back.origin_node, "node-1");
            prop_assert_eq!(back.nonce, nonce);
            prop_assert_eq!(back.received_at, batch.received_at);
            prop_assert_eq!(back.reads.len(), 1);
            prop_assert_eq!(back.reads[0].1, position);
            prop_assert_eq!(&back.reads[0].0, &read);
        }
    }

    #[test]
    fn an_entry_that_cannot_be_applied_is_refused_by_name() {
        let e = pb::LogEntry {
            entry: Some(pb::log_entry::Entry::Batch(pb::LoggedBatch {
                force: "AVON".into(),
                reads: vec![pb::LoggedRead {
                    read: Some(pb::Read {
                        read_id: "r1".into(),
                        vrm: "!!".into(),
                        observed_at: Some(to_pb_time(Timestamp::from_millis(1))),
                        ..Default::default()
                    }),
                    lat_e6: 51_000_000,
                    lon_e6: -2_000_000,
                }],
                ..Default::default()
            })),
        };
        let err = entry_from_pb(e).unwrap_err().to_string();
        assert!(
            err.contains("read 0") && err.contains("invalid_vrm"),
            "{err}"
        );
        assert!(entry_from_pb(pb::LogEntry::default()).is_err());
    }
}
