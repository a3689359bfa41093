//! A file system that loses every write not yet synced, on demand: the
//! power-cut test of nadc's durability (issue 22).
//!
//! SIGKILL leaves the kernel's page cache alone, so a killed process
//! loses nothing it wrote, synced or not, and a test that kills can never
//! catch a missing `fsync`. [`FaultFs`] mounts a directory through FUSE
//! and keeps, for every file written since its last `fsync` or
//! `fdatasync`, an undo log of those writes. [`FaultFs::cut_power`] undoes
//! them all (every file goes back to what it held when last synced) and
//! fails every later operation with EIO, as a disk whose power is cut.
//! The process using it is then killed, the file system unmounted and
//! mounted again, and whatever it finds is what a real power cut would
//! have left.
//!
//! The model, and its limits:
//! - File data is lost back to the last `fsync`/`fdatasync` of the file
//!   (from any descriptor). A write through a descriptor opened `O_SYNC`
//!   or `O_DSYNC` counts as a write and a sync.
//! - Names (create, rename, unlink, mkdir) are durable when made, as on a
//!   journalling file system that has committed them: a file created and
//!   never synced survives the cut, empty. So a program that forgets to
//!   sync a directory is not caught.
//! - Nothing is torn within a write: a write is undone whole or kept.
//!
//! Mounting needs `/dev/fuse` and root (or `fusermount3`).
#![forbid(unsafe_code)]

mod fs;
mod undo;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption};

/// What a power cut lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Files that went back to their last synced state.
    pub files: usize,
    /// Bytes written to them since, now gone.
    pub bytes: u64,
}

/// A directory mounted through the fault-injecting file system.
pub struct FaultFs {
    shared: Arc<fs::Shared>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

impl FaultFs {
    /// Mounts `backing` (an existing directory, which holds the durable
    /// state) at `mountpoint` (an existing empty directory).
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<FaultFs> {
        let shared = fs::Shared::new(backing.canonicalize()?);
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("nadc-faultfs".into()),
            MountOption::Subtype("nadc-faultfs".into()),
        ];
        let session = fuser::spawn_mount(fs::FaultFs(shared.clone()), mountpoint, &config)?;
        Ok(FaultFs {
            shared,
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Bytes written and not yet synced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.shared.unsynced_bytes()
    }

    /// The power cut: every file goes back to what it held when last
    /// synced, and every operation from now on fails with EIO. Kill the
    /// processes using the mount, then [`FaultFs::unmount`] it.
    pub fn cut_power(&self) -> io::Result<Lost> {
        self.shared.cut()
    }

    /// Unmounts. The directory beneath holds what survived.
    pub fn unmount(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take()
            && s.umount_and_join().is_err()
        {
            // Still in use (a test failed with a process holding a file):
            // detached, so no dead mount outlives the test.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}
