//! The file system itself, mounted for real: what a power cut keeps.

use std::fs::{self, File};
use std::io::Write;

use nadc_faultfs::{FaultFs, Lost};

#[test]
fn a_power_cut_keeps_synced_data_and_loses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, mnt) = (dir.path().join("disk"), dir.path().join("mnt"));
    fs::create_dir_all(&disk).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    let faultfs = FaultFs::mount(&disk, &mnt).unwrap();

    // A log: two records synced, a third written after.
    let mut log = File::create(mnt.join("log")).unwrap();
    log.write_all(b"one\ntwo\n").unwrap();
    log.sync_data().unwrap();
    log.write_all(b"three\n").unwrap();
    // A file written in place under a temporary name, synced and renamed
    // over the old one: the classic atomic replace.
    fs::write(mnt.join("CURRENT"), b"v1").unwrap();
    File::open(mnt.join("CURRENT")).unwrap().sync_all().unwrap();
    let mut tmp = File::create(mnt.join("CURRENT.tmp")).unwrap();
    tmp.write_all(b"v2").unwrap();
    tmp.sync_all().unwrap();
    fs::rename(mnt.join("CURRENT.tmp"), mnt.join("CURRENT")).unwrap();
    assert_eq!(fs::read(mnt.join("CURRENT")).unwrap(), b"v2");
    // Never synced: survives empty.
    fs::create_dir(mnt.join("sub")).unwrap();
    fs::write(mnt.join("sub/never"), b"lost").unwrap();
    // Synced, then overwritten in place and not synced.
    let mut page = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(mnt.join("page"))
        .unwrap();
    page.write_all(b"AAAAAAAA").unwrap();
    page.sync_all().unwrap();
    std::os::unix::fs::FileExt::write_all_at(&page, b"BB", 3).unwrap();
    page.set_len(5).unwrap();
    // Unlinked while open and written after; its name now another file's,
    // synced: the cut leaves that other file alone.
    let mut old = File::create(mnt.join("seg")).unwrap();
    old.write_all(b"old").unwrap();
    fs::remove_file(mnt.join("seg")).unwrap();
    old.write_all(b"more").unwrap();
    fs::write(mnt.join("seg"), b"newer content").unwrap();
    File::open(mnt.join("seg")).unwrap().sync_all().unwrap();
    // Before the cut every write reads back.
    assert_eq!(fs::read(mnt.join("log")).unwrap(), b"one\ntwo\nthree\n");
    assert_eq!(fs::read(mnt.join("page")).unwrap(), b"AAABB");
    assert_eq!(faultfs.unsynced_bytes(), 6 + 4 + 2 + 4);

    let lost = faultfs.cut_power().unwrap();
    assert_eq!(
        lost,
        Lost {
            files: 3,
            bytes: 12
        }
    );
    // The disk is gone: every operation fails.
    let e = log.write_all(b"four\n").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc_eio()));
    let e = fs::read(mnt.join("log")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc_eio()));
    drop((log, tmp, page, old));
    faultfs.unmount().unwrap();

    assert_eq!(fs::read(disk.join("log")).unwrap(), b"one\ntwo\n");
    assert_eq!(fs::read(disk.join("CURRENT")).unwrap(), b"v2");
    assert!(!disk.join("CURRENT.tmp").exists());
    assert_eq!(fs::read(disk.join("sub/never")).unwrap(), b"");
    assert_eq!(fs::read(disk.join("page")).unwrap(), b"AAAAAAAA");
    assert_eq!(fs::read(disk.join("seg")).unwrap(), b"newer content");

    // Mounted again, it shows what survived and works as before.
    let faultfs = FaultFs::mount(&disk, &mnt).unwrap();
    assert_eq!(fs::read(mnt.join("log")).unwrap(), b"one\ntwo\n");
    let mut names: Vec<_> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["CURRENT", "log", "page", "seg", "sub"]);
    fs::remove_file(mnt.join("page")).unwrap();
    fs::remove_file(mnt.join("sub/never")).unwrap();
    fs::remove_dir(mnt.join("sub")).unwrap();
    faultfs.unmount().unwrap();
    assert!(!disk.join("page").exists() && !disk.join("sub").exists());
}

/// EIO: what a dead disk answers.
fn libc_eio() -> i32 {
    5
}
