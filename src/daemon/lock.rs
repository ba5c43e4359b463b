//! One daemon per results database: start-up marks every `running` run as
//! aborted, which would be wrong while another daemon is running them.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Held for the daemon's lifetime; the kernel releases it if the process dies.
pub struct DaemonLock {
    _file: fs::File,
}

pub fn exclusive(database: &Path) -> anyhow::Result<DaemonLock> {
    let mut name = database.as_os_str().to_owned();
    name.push(".daemon-lock");
    let path = PathBuf::from(name);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open daemon lock {}", path.display()))?;
    // SAFETY: flock(2) on a descriptor we own; no memory is shared with the kernel.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "another drdrill daemon (pid {}) already uses the results database {}: stop it first, or give this one its own `database`",
            holder.trim(),
            database.display()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(DaemonLock { _file: file })
}
