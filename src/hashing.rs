//! SHA-256 while bytes flow, so nothing is read twice to be verified.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// A SHA-256 digest kept as its 32 bytes (a manifest holds one per file, so
/// half the memory of its hex text) and written as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest256(pub [u8; 32]);

impl Digest256 {
    pub fn of(hasher: Sha256) -> Digest256 {
        Digest256(hasher.finalize().into())
    }
}

impl std::fmt::Display for Digest256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Digest256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Digest256 {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|e| format!("{text:?} is not a sha256 in hex: {e}"))?;
        Ok(Digest256(out))
    }
}

impl serde::Serialize for Digest256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Digest256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Lower-case hex of a finished digest: the one spelling used in manifests and the DB.
pub fn hex_digest(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_digest(Sha256::new_with_prefix(bytes))
}

/// Hashes everything read through it. Borrowing the hasher (instead of owning it)
/// lets the caller keep hashing the rest of a stream after a decoder that wrapped
/// this reader has given up on it.
pub struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
    count: &'a mut u64,
}

impl<'a, R: Read> HashingReader<'a, R> {
    pub fn new(inner: R, hasher: &'a mut Sha256, count: &'a mut u64) -> Self {
        Self { inner, hasher, count }
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        *self.count += n as u64;
        Ok(n)
    }
}

/// Hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), count: 0 }
    }

    /// Returns the inner writer, the hex digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex_digest(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes a whole file with a large buffer.
pub fn sha256_file(path: &std::path::Path) -> io::Result<(String, u64)> {
    let file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut count = 0;
    let mut reader = HashingReader::new(file, &mut hasher, &mut count);
    io::copy(&mut reader, &mut io::sink())?;
    Ok((hex_digest(hasher), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_and_writer_agree_with_one_shot() {
        let data = b"the quick brown fox".repeat(1000);
        let expected = sha256_hex(&data);

        let mut hasher = Sha256::new();
        let mut count = 0;
        let mut r = HashingReader::new(&data[..], &mut hasher, &mut count);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(count, data.len() as u64);
        assert_eq!(hex_digest(hasher), expected);

        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, hex, n) = w.finish();
        assert_eq!((hex, n, out), (expected, data.len() as u64, data));
    }
}
