//! Shared by the test binaries whose store lives for the whole process.

use std::path::PathBuf;

/// The directory for a store shared by every test in this binary.
///
/// A fixture kept in a `static` is never dropped, so a `TempDir` there
/// would leave a store (about 75 MB with its preallocated write-ahead log)
/// in the system's temporary directory on every run. This one has a fixed
/// name under cargo's per-target scratch directory and is emptied first,
/// so each run reuses the same place and at most one copy exists.
pub fn fixture_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("clear {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
