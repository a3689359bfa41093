//! What a file held when it was last synced, kept as an undo log of the
//! writes since: the length it had, and the bytes each later write or
//! truncation overwrote. Undoing the log in reverse gives back the synced
//! file exactly.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// The undo log of one file since its last sync.
#[derive(Debug)]
pub(crate) struct Undo {
    /// The file beneath (`st_dev`, `st_ino`): the log is undone on it
    /// only, never on another file since given its name.
    identity: (u64, u64),
    /// The file's length when last synced.
    synced_len: u64,
    /// `(offset, bytes)` that writes since then overwrote, oldest first.
    /// Only bytes below `synced_len` are kept: what lies past it is cut
    /// off by restoring the length.
    saved: Vec<(u64, Vec<u8>)>,
    /// Bytes written since the last sync (for the report of what a cut lost).
    written: u64,
}

impl Undo {
    /// A log that starts now, with the file as it is.
    pub(crate) fn start(file: &File) -> io::Result<Undo> {
        let meta = file.metadata()?;
        Ok(Undo {
            identity: (meta.dev(), meta.ino()),
            synced_len: meta.len(),
            saved: Vec::new(),
            written: 0,
        })
    }

    /// Records what a write of `len` bytes at `offset` is about to
    /// overwrite.
    pub(crate) fn before_write(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.written += len;
        self.save(file, offset, offset.saturating_add(len))
    }

    /// Records what cutting the file to `new_len` is about to drop.
    pub(crate) fn before_truncate(&mut self, file: &File, new_len: u64) -> io::Result<()> {
        self.save(file, new_len, u64::MAX)
    }

    /// Saves the file's present bytes in `[from, to)` below the synced
    /// length.
    fn save(&mut self, file: &File, from: u64, to: u64) -> io::Result<()> {
        let now = file.metadata()?.len();
        let end = to.min(self.synced_len).min(now);
        if from >= end {
            return Ok(());
        }
        let mut bytes = vec![0; (end - from) as usize];
        file.read_exact_at(&mut bytes, from)?;
        self.saved.push((from, bytes));
        Ok(())
    }

    /// Bytes written since the last sync.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Whether `file` is the file this log is of.
    pub(crate) fn is_of(&self, file: &File) -> io::Result<bool> {
        let meta = file.metadata()?;
        Ok((meta.dev(), meta.ino()) == self.identity)
    }

    /// Puts the file back as it was when last synced.
    pub(crate) fn roll_back(self, file: &File) -> io::Result<()> {
        for (offset, bytes) in self.saved.iter().rev() {
            file.write_all_at(bytes, *offset)?;
        }
        file.set_len(self.synced_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn content(file: &mut File) -> Vec<u8> {
        let mut out = Vec::new();
        let mut f = file.try_clone().unwrap();
        std::io::Seek::rewind(&mut f).unwrap();
        f.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn rolling_back_restores_the_synced_bytes_after_any_mix_of_writes_and_truncations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let synced: Vec<u8> = (0..100u8).collect();
        file.write_all_at(&synced, 0).unwrap();
        let mut undo = Undo::start(&file).unwrap();
        // Overwrite the middle, append, truncate into the synced part,
        // grow again over it, overwrite what was rewritten.
        let steps: [(&str, u64, u64); 6] = [
            ("write", 10, 20),
            ("write", 95, 30),
            ("truncate", 50, 0),
            ("write", 40, 40),
            ("write", 15, 3),
            ("truncate", 5, 0),
        ];
        for (op, at, len) in steps {
            if op == "write" {
                undo.before_write(&file, at, len).unwrap();
                file.write_all_at(&vec![0xEE; len as usize], at).unwrap();
            } else {
                undo.before_truncate(&file, at).unwrap();
                file.set_len(at).unwrap();
            }
        }
        assert_ne!(content(&mut file), synced);
        assert_eq!(undo.written(), 20 + 30 + 40 + 3);
        undo.roll_back(&file).unwrap();
        assert_eq!(content(&mut file), synced);
    }
}
