//! Shared by the node crate's tests on a real store.

use nadc_core::read::ReadInput;
use nadc_core::{GeoPoint, Timestamp};
use nadc_store::NewRead;

/// A read of `vrm` at camera C1 (51.5, -2.5) captured `at`, received at
/// `received_at`.
pub fn read_at(id: &str, vrm: &str, at: Timestamp, received_at: Timestamp) -> NewRead {
    let read = ReadInput {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(at),
        camera_id: "C1".into(),
        lat: Some(51.5),
        lon: Some(-2.5),
        ..Default::default()
    }
    .validate()
    .unwrap();
    NewRead::new(read, GeoPoint::new(51.5, -2.5).unwrap(), received_at)
}
