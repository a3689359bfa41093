//! The camera registry: every force's cameras, in memory for ingest, backed
//! by the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use nadc_core::{Camera, ForceId, GeoPoint, Read, ReadError, ReadErrorCode};
use nadc_store::{Store, StoreError};

/// Registered cameras keyed by (force, camera id).
#[derive(Debug, Default)]
pub struct CameraRegistry {
    cameras: RwLock<HashMap<(ForceId, String), Camera>>,
}

impl CameraRegistry {
    /// Loads every registered camera from the store.
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let map = store
            .cameras(None)?
            .into_iter()
            .map(|c| ((c.force.clone(), c.camera_id.clone()), c))
            .collect();
        Ok(Self {
            cameras: RwLock::new(map),
        })
    }

    /// Stores cameras durably, then makes them visible to ingest.
    pub fn register(
        &self,
        store: &Arc<dyn Store>,
        cameras: Vec<Camera>,
    ) -> Result<usize, StoreError> {
        store.put_cameras(&cameras)?;
        let n = cameras.len();
        if let Ok(mut map) = self.cameras.write() {
            for c in cameras {
                map.insert((c.force.clone(), c.camera_id.clone()), c);
            }
        }
        Ok(n)
    }

    /// Every registered camera `keep` keeps.
    pub fn matching(&self, keep: impl Fn(&Camera) -> bool) -> Vec<Camera> {
        self.cameras
            .read()
            .map(|m| m.values().filter(|c| keep(c)).cloned().collect())
            .unwrap_or_default()
    }

    /// Looks a camera up.
    pub fn get(&self, force: &ForceId, camera_id: &str) -> Option<Camera> {
        self.cameras
            .read()
            .ok()?
            .get(&(force.clone(), camera_id.to_string()))
            .cloned()
    }

    /// Where a read was taken: its own position, else its fixed camera's.
    pub fn resolve_position(&self, force: &ForceId, read: &Read) -> Result<GeoPoint, ReadError> {
        if let Some(p) = read.position {
            return Ok(p);
        }
        match self.get(force, &read.camera_id) {
            None => Err(ReadError::new(
                ReadErrorCode::UnknownCamera,
                format!(
                    "camera {:?} is not registered for {force} and the read has no lat/lon",
                    read.camera_id
                ),
            )),
            Some(c) if c.kind.moves() => Err(ReadError::new(
                ReadErrorCode::NoPosition,
                format!(
                    "camera {:?} is {} so its reads must carry their own lat/lon",
                    read.camera_id, c.kind
                ),
            )),
            Some(c) => Ok(c.position),
        }
    }
}
