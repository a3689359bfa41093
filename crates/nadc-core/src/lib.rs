//! Domain types for nadc, the national ANPR data centre.
//!
//! Everything here is pure: no tokio, no prost, no RocksDB and no I/O. The
//! types carry their invariants: a [`Vrm`] is always normalised, a
//! [`ForceId`] is always a well-formed force code, a [`GeoPoint`] is always a
//! valid WGS84 position stored at microdegree precision.
#![deny(missing_docs, unsafe_code)]

pub mod access;
pub mod alert;
pub mod audit;
pub mod camera;
pub mod geo;
pub mod hotlist;
pub mod identity;
pub mod read;
pub mod text;
pub mod time;
pub mod trigger;
pub mod vrm;
pub mod vrm_match;

pub use camera::{Camera, CameraError, CameraKind, Roundabout};
pub use geo::{CellRange, Circle, GeoError, GeoPoint};
pub use identity::{ForceId, IdentityError, Principal, Role};
pub use read::{Read, ReadError, ReadErrorCode, ReadRef, StoredRead};
pub use time::Timestamp;
pub use vrm::{Vrm, VrmError};
