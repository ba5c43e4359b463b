//! Errors for people: the chain in one line, with the fix for the common
//! operational causes named.

/// The error chain in one line, with the fix for the common operational causes.
pub fn explain(e: &anyhow::Error) -> String {
    let text = crate::redact::scrub(&format!("{e:#}")).into_owned();
    if is_disk_full(e) {
        format!("no space left on device: free space, or point `scratch` (or the store) at a larger disk; {text}")
    } else {
        text
    }
}

/// Whether anything in the chain is a full disk (ENOSPC, or SQLite's SQLITE_FULL).
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(libc::ENOSPC))
            || c.downcast_ref::<rusqlite::Error>()
                .and_then(|s| s.sqlite_error_code())
                .is_some_and(|code| code == rusqlite::ErrorCode::DiskFull)
    }) || format!("{e:#}").contains("No space left on device")
}
