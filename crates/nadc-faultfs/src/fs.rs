//! The FUSE operations: each one done on the directory beneath, with the
//! undo log of every file written since its last sync.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, WriteFlags,
};

use crate::Lost;
use crate::undo::Undo;

/// How long the kernel may keep an entry or attributes. Every change goes
/// through this file system, so what it caches stays true.
const TTL: Duration = Duration::from_secs(1);

/// The state every operation shares (one lock: operations are short and
/// the power cut must fall between two of them, never inside one).
pub(crate) struct Shared(Mutex<State>);

impl Shared {
    pub(crate) fn new(root: PathBuf) -> Arc<Shared> {
        let mut nodes = HashMap::new();
        nodes.insert(INodeNo::ROOT.0, PathBuf::new());
        Arc::new(Shared(Mutex::new(State {
            root,
            nodes,
            by_backing: HashMap::new(),
            next_ino: INodeNo::ROOT.0 + 1,
            handles: HashMap::new(),
            next_fh: 1,
            unsynced: HashMap::new(),
            cut: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The power cut: every write since its file's last sync is undone,
    /// and every operation from now on fails with EIO.
    pub(crate) fn cut(&self) -> io::Result<Lost> {
        let mut st = self.lock();
        st.cut = true;
        let mut lost = Lost::default();
        let unsynced = std::mem::take(&mut st.unsynced);
        for (ino, undo) in unsynced {
            let Some(rel) = st.nodes.get(&ino) else {
                continue;
            };
            let path = st.root.join(rel);
            match File::options().write(true).read(true).open(&path) {
                // (A file since unlinked or replaced has lost its name: what
                // holds it now is another file, left alone.)
                Ok(file) if undo.is_of(&file)? => {
                    lost.files += 1;
                    lost.bytes += undo.written();
                    undo.roll_back(&file)?;
                }
                Ok(_) => {}
                // Deleted since: nothing of it survives anyway.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lost)
    }

    /// Bytes written and not yet synced, over all files.
    pub(crate) fn unsynced_bytes(&self) -> u64 {
        self.lock().unsynced.values().map(Undo::written).sum()
    }
}

struct Handle {
    ino: u64,
    file: File,
}

struct State {
    /// The directory beneath.
    root: PathBuf,
    /// Inode number → path below `root`.
    nodes: HashMap<u64, PathBuf>,
    /// The file beneath `(st_dev, st_ino)` → its inode number here.
    by_backing: HashMap<(u64, u64), u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Undo logs of the files written since their last sync, by inode.
    unsynced: HashMap<u64, Undo>,
    /// The power is cut: every operation fails.
    cut: bool,
}

type Res<T> = Result<T, Errno>;

fn err(e: io::Error) -> Errno {
    Errno::from(e)
}

impl State {
    fn live(&self) -> Res<()> {
        if self.cut { Err(Errno::EIO) } else { Ok(()) }
    }

    fn rel(&self, ino: INodeNo) -> Res<&PathBuf> {
        self.nodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    fn path(&self, ino: INodeNo) -> Res<PathBuf> {
        Ok(self.root.join(self.rel(ino)?))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Res<PathBuf> {
        Ok(self.rel(parent)?.join(name))
    }

    /// The inode number of the file at `rel`, given one if new.
    fn ino_of(&mut self, rel: &Path, meta: &Metadata) -> u64 {
        if rel.as_os_str().is_empty() {
            return INodeNo::ROOT.0;
        }
        let key = (meta.dev(), meta.ino());
        let ino = match self.by_backing.get(&key) {
            Some(&ino) => ino,
            None => {
                let ino = self.next_ino;
                self.next_ino += 1;
                self.by_backing.insert(key, ino);
                ino
            }
        };
        self.nodes.insert(ino, rel.to_path_buf());
        ino
    }

    /// The entry for `rel`, looked up beneath.
    fn entry(&mut self, rel: &Path) -> Res<FileAttr> {
        let meta = fs::symlink_metadata(self.root.join(rel)).map_err(err)?;
        let ino = self.ino_of(rel, &meta);
        Ok(attr(ino, &meta))
    }

    /// The file or directory at `rel`, before an operation that may take
    /// its last name: its identity beneath, if that name is its last.
    fn last_name(&self, rel: &Path) -> Option<(u64, u64)> {
        let meta = fs::symlink_metadata(self.root.join(rel)).ok()?;
        (meta.is_dir() || meta.nlink() <= 1).then(|| (meta.dev(), meta.ino()))
    }

    /// A file gone (its last name taken, the operation done): its unsynced
    /// writes go with it, and its inode beneath may be reused.
    fn forget(&mut self, gone: Option<(u64, u64)>) {
        if let Some(ino) = gone.and_then(|g| self.by_backing.remove(&g)) {
            self.unsynced.remove(&ino);
        }
    }

    /// Removes the name `name` in `parent` with `op` (unlink or rmdir),
    /// forgetting the file if that was its last name.
    fn remove(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        op: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Res<()> {
        let rel = self.child(parent, name)?;
        let gone = self.last_name(&rel);
        op(&self.root.join(&rel)).map_err(err)?;
        self.forget(gone);
        Ok(())
    }

    fn open_handle(&mut self, ino: u64, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino, file });
        fh
    }

    fn handle(&self, fh: FileHandle) -> Res<&Handle> {
        self.handles.get(&fh.0).ok_or(Errno::EBADF)
    }

    fn undo_for(&mut self, ino: u64, file: &File) -> Res<&mut Undo> {
        match self.unsynced.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Ok(e.insert(Undo::start(file).map_err(err)?))
            }
        }
    }

    fn write(&mut self, fh: FileHandle, offset: u64, data: &[u8], flags: i32) -> Res<u32> {
        let (ino, file) = {
            let h = self.handle(fh)?;
            (h.ino, h.file.try_clone().map_err(err)?)
        };
        self.undo_for(ino, &file)?
            .before_write(&file, offset, data.len() as u64)
            .map_err(err)?;
        file.write_all_at(data, offset).map_err(err)?;
        // O_SYNC and O_DSYNC: each write is a write and an fdatasync.
        if flags & (libc::O_SYNC | libc::O_DSYNC) != 0 {
            self.unsynced.remove(&ino);
        }
        Ok(data.len() as u32)
    }

    fn truncate(&mut self, ino: u64, file: &File, len: u64) -> Res<()> {
        self.undo_for(ino, file)?
            .before_truncate(file, len)
            .map_err(err)?;
        file.set_len(len).map_err(err)
    }

    fn setattr(
        &mut self,
        ino: INodeNo,
        mode: Option<u32>,
        size: Option<u64>,
        fh: Option<FileHandle>,
    ) -> Res<FileAttr> {
        let path = self.path(ino)?;
        if let Some(mode) = mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(err)?;
        }
        if let Some(size) = size {
            let file = match fh.and_then(|fh| self.handles.get(&fh.0)) {
                Some(h) => h.file.try_clone().map_err(err)?,
                None => File::options().write(true).open(&path).map_err(err)?,
            };
            self.truncate(ino.0, &file, size)?;
        }
        let meta = fs::symlink_metadata(&path).map_err(err)?;
        Ok(attr(ino.0, &meta))
    }

    fn open(&mut self, ino: INodeNo, flags: i32) -> Res<u64> {
        let path = self.path(ino)?;
        let file = options(flags).open(&path).map_err(err)?;
        if flags & libc::O_TRUNC != 0 {
            self.truncate(ino.0, &file, 0)?;
        }
        Ok(self.open_handle(ino.0, file))
    }

    fn create(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Res<(FileAttr, u64)> {
        let rel = self.child(parent, name)?;
        let file = options(flags)
            .create(true)
            .mode(mode)
            .open(self.root.join(&rel))
            .map_err(err)?;
        let attr = self.entry(&rel)?;
        if flags & libc::O_TRUNC != 0 {
            self.truncate(attr.ino.0, &file, 0)?;
        }
        let fh = self.open_handle(attr.ino.0, file);
        Ok((attr, fh))
    }

    fn rename(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        if !flags.is_empty() {
            return Err(Errno::from_i32(libc::EINVAL));
        }
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        if from == to {
            return Ok(());
        }
        let replaced = self.last_name(&to);
        fs::rename(self.root.join(&from), self.root.join(&to)).map_err(err)?;
        self.forget(replaced);
        // Every inode at or below `from` is now below `to`.
        for rel in self.nodes.values_mut() {
            if let Ok(rest) = rel.strip_prefix(&from) {
                // (Joining an empty path would add a trailing slash.)
                *rel = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
            }
        }
        Ok(())
    }

    fn readdir(&mut self, ino: INodeNo, offset: u64, reply: &mut ReplyDirectory) -> Res<()> {
        let rel = self.rel(ino)?.clone();
        let mut entries: Vec<(u64, FileType, std::ffi::OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        let mut names: Vec<_> = fs::read_dir(self.root.join(&rel))
            .map_err(err)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let child = rel.join(&name);
            let Ok(meta) = fs::symlink_metadata(self.root.join(&child)) else {
                continue;
            };
            let ino = self.ino_of(&child, &meta);
            entries.push((ino, kind(&meta), name));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        Ok(())
    }
}

/// Open options for FUSE open `flags`; appends arrive with their offset,
/// so the file beneath is opened without O_APPEND.
fn options(flags: i32) -> fs::OpenOptions {
    let mut o = File::options();
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => o.read(true),
        libc::O_WRONLY => o.write(true),
        _ => o.read(true).write(true),
    };
    o.custom_flags(flags & libc::O_EXCL);
    o
}

fn kind(meta: &Metadata) -> FileType {
    FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(ino: u64, meta: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: meta.len(),
        blocks: meta.blocks(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: time(meta.ctime(), meta.ctime_nsec()),
        kind: kind(meta),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}

/// The file system mounted: a handle on the shared state.
pub(crate) struct FaultFs(pub(crate) Arc<Shared>);

impl FaultFs {
    fn run<T>(&self, op: impl FnOnce(&mut State) -> Res<T>) -> Res<T> {
        let mut st = self.0.lock();
        st.live()?;
        op(&mut st)
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.run(|st| {
            let rel = st.child(parent, name)?;
            st.entry(&rel)
        }) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.run(|st| {
            let meta = fs::symlink_metadata(st.path(ino)?).map_err(err)?;
            Ok(attr(ino.0, &meta))
        }) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.run(|st| st.setattr(ino, mode, size, fh)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.run(|st| {
            let rel = st.child(parent, name)?;
            fs::DirBuilder::new()
                .mode(mode & !umask)
                .create(st.root.join(&rel))
                .map_err(err)?;
            st.entry(&rel)
        }) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.run(|st| st.remove(parent, name, |p| fs::remove_file(p))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.run(|st| st.remove(parent, name, |p| fs::remove_dir(p))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.run(|st| st.rename(parent, name, newparent, newname, flags)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.run(|st| st.open(ino, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.run(|st| st.create(parent, name, mode & !umask, flags)) {
            Ok((a, fh)) => {
                reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.run(|st| {
            let h = st.handle(fh)?;
            let mut buf = vec![0; size as usize];
            let mut n = 0;
            while n < buf.len() {
                match h.file.read_at(&mut buf[n..], offset + n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(err(e)),
                }
            }
            buf.truncate(n);
            Ok(buf)
        }) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run(|st| st.write(fh, offset, data, flags.0)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Closing a descriptor syncs nothing.
        match self.run(|_| Ok(())) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The file's data is now durable (the directory beneath is never
        // cut, so it needs no sync of its own).
        match self.run(|st| {
            st.unsynced.remove(&ino.0);
            Ok(())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.run(|st| st.rel(ino).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.run(|st| st.readdir(ino, offset, &mut reply)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names are durable when made (see the crate's model).
        match self.run(|_| Ok(())) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Ample room: the tests' stores are small.
        reply.statfs(1 << 28, 1 << 27, 1 << 27, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}
