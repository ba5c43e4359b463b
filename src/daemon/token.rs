//! The API's bearer token: a file only the drdrill user can read.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Reads the token, creating the file (mode 0600, 32 random bytes as hex) if
/// missing. Refuses a file with any group or other permission bit: anyone
/// holding the token can start drills, and a group is not always as small as
/// it looks (0640 under a shared group is readable by every member).
pub fn load_or_create(path: &Path) -> anyhow::Result<String> {
    match fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            anyhow::ensure!(
                mode & 0o077 == 0,
                "API token file {} has mode {mode:04o}, so users other than its owner can read or change it, and whoever holds the token can start drills: run `chmod 600 {}`",
                path.display(),
                path.display()
            );
            read(path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(e).with_context(|| format!("cannot read API token file {}", path.display())),
    }
}

/// The token as a client (`drdrill trigger`) reads it.
pub fn read(path: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read API token file {} ([api] token_file): run as the drdrill user, or start the daemon once to create it",
            path.display()
        )
    })?;
    let token = text.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "API token file {} is empty: delete it and the daemon makes a new one",
        path.display()
    );
    Ok(token)
}

/// 32 random bytes from the kernel as hex: tokens, console session ids.
pub fn random_hex(what: &str) -> anyhow::Result<String> {
    let mut random = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .with_context(|| format!("cannot read /dev/urandom for {what}"))?;
    Ok(hex::encode(random))
}

fn create(path: &Path) -> anyhow::Result<String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {} for the API token", parent.display()))?;
    }
    let token = random_hex("the API token")?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create API token file {}", path.display()))?;
    writeln!(f, "{token}").with_context(|| format!("cannot write API token file {}", path.display()))?;
    tracing::info!("created API token file {} (mode 0600)", path.display());
    Ok(token)
}

/// Compares in constant time: both sides are hashed first, so neither the
/// position of the first difference nor the token's length shows in the timing.
pub fn matches(expected: &str, given: &str) -> bool {
    let (a, b) = (Sha256::digest(expected.as_bytes()), Sha256::digest(given.as_bytes()));
    let diff = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_refused_with_any_group_or_other_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/token");
        let t = load_or_create(&path).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), t);
        for mode in [0o644, 0o640, 0o660, 0o604, 0o610] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = load_or_create(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("mode {mode:04o}")) && e.contains("chmod 600"), "{e}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), t);
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
        assert!(!matches("abc", "ab"));
        assert!(!matches("abc", ""));
    }
}
