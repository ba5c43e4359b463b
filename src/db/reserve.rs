//! Space kept in reserve beside the results database (`<database>.reserve`), so
//! a run whose disk filled up while it ran can still record how it ended.
//!
//! The file's blocks are really allocated (`posix_fallocate`, not a sparse
//! file), so deleting it frees them for SQLite's write-ahead log. It is
//! re-created at the next open once there is room again.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Enough for the finishing transaction of a run with many checks and phases,
/// its evidence record and the head log line, several times over.
pub const RESERVE_BYTES: i64 = 1 << 20;

pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".reserve");
    PathBuf::from(name)
}

/// Makes sure the reserve is allocated in full. Fails when the disk has no room
/// for it; the caller carries on without (the next open tries again).
pub fn ensure(path: &Path) -> io::Result<()> {
    let f = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: posix_fallocate on a descriptor this function owns; no memory is shared.
    match unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, RESERVE_BYTES) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Frees the reserve for the database to use; whether there was one to free.
pub fn release(path: &Path) -> bool {
    let had = fs::metadata(path).is_ok_and(|m| m.len() > 0);
    had && fs::remove_file(path).is_ok()
}
