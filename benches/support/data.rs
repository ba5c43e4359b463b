//! The generated data sets. They are deterministic (a seeded xorshift), so every
//! machine benches the same bytes without shipping them, and each is generated
//! once: a `.complete` marker says a folder holds a whole set, because creating
//! many small files on the development disk is slow and erratic.

use std::fs;
use std::io::Write;
use std::path::Path;

/// What a data set is made of.
#[derive(Clone, Copy)]
pub enum Kind {
    /// About 1 GiB of 64 KiB..4 MiB files, half text-like, half random.
    Mixed,
    /// One 2 GiB file, like a disk image: runs of zeros, text and random blocks.
    Big,
    /// This many text-like files of 1..8 KiB, 1,000 to a folder.
    Small(usize),
}

/// Generates `kind` into `dir` unless a complete copy is already there.
pub fn ensure(dir: &Path, kind: Kind) {
    if dir.join(".complete").exists() {
        return;
    }
    eprintln!("generating {} (once; later runs reuse it)", dir.display());
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    match kind {
        Kind::Mixed => gen_mixed(dir),
        Kind::Big => gen_big(dir),
        Kind::Small(n) => gen_small(dir, n),
    }
    fs::write(dir.join(".complete"), b"").unwrap_or_else(|e| panic!("cannot mark {} complete: {e}", dir.display()));
}

/// Regular files and their total size in bytes, the `.complete` marker left out.
pub fn tree_stats(dir: &Path) -> (usize, u64) {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() != ".complete")
        .fold((0, 0), |(n, b), e| (n + 1, b + e.metadata().map(|m| m.len()).unwrap_or(0)))
}

/// A fast deterministic byte generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "order",
    "customer",
    "invoice",
    "restore",
    "backup",
    "drill",
    "shipped",
    "pending",
    "total",
    "amount",
    "2026-11-30",
    "status",
    "warehouse",
    "berlin",
    "paris",
    "tokyo",
    "error",
    "info",
    "request",
    "latency",
];

fn text_like(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.next().is_multiple_of(9) { b'\n' } else { b' ' });
        if rng.next().is_multiple_of(5) {
            write!(out, "{} ", rng.next() % 100_000).expect("writing to a Vec");
        }
    }
    out.truncate(len);
    out
}

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

fn gen_mixed(dir: &Path) {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let target: u64 = 1 << 30;
    let mut written = 0u64;
    let mut i = 0;
    while written < target {
        let size = 64 * 1024 + (rng.next() % (4 * 1024 * 1024 - 64 * 1024)) as usize;
        let data = if i % 2 == 0 {
            text_like(&mut rng, size)
        } else {
            let mut b = vec![0u8; size];
            rng.fill(&mut b);
            b
        };
        let sub = dir.join(format!("d{:02}", i % 16));
        mkdir(&sub);
        write(&sub.join(format!("f{i:05}.{}", if i % 2 == 0 { "txt" } else { "bin" })), &data);
        written += size as u64;
        i += 1;
    }
}

fn gen_small(dir: &Path, n: usize) {
    let mut rng = Rng(0xD1B54A32D192ED03);
    for i in 0..n {
        let sub = dir.join(format!("d{:04}", i / 1000));
        if i % 1000 == 0 {
            mkdir(&sub);
        }
        if i > 0 && i % 100_000 == 0 {
            eprintln!("  {i} of {n} files");
        }
        let size = 1024 + (rng.next() % (7 * 1024 + 1)) as usize;
        write(&sub.join(format!("f{i:07}")), &text_like(&mut rng, size));
    }
}

fn gen_big(dir: &Path) {
    let mut rng = Rng(0xA0761D6478BD642F);
    let path = dir.join("big.img");
    let file = fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut f = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..2048 {
        match i % 4 {
            0 => buf.fill(0),
            1 => buf.copy_from_slice(&text_like(&mut rng, 1 << 20)),
            _ => rng.fill(&mut buf),
        }
        f.write_all(&buf).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    f.flush().unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
