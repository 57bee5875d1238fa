//! Compressing a disk image in independent 1 MiB chunks, so that a download only has to
//! compress the chunks personalization changed (research/crates.md §9).
//!
//! - gzip: every chunk is raw deflate from a fresh compressor, ended with a sync flush
//!   (byte-aligned, no final-block bit); the image's last chunk is finished instead. The
//!   concatenation is one valid deflate stream, wrapped in ONE gzip member whose CRC-32 is
//!   combined from the chunks' CRCs. `gzip -l`, Raspberry Pi Imager and Etcher read the
//!   right size from it.
//! - zstd: every chunk is its own frame with its content size, so the decompressed size is
//!   known from the frames (Imager's `ZSTD_findDecompressedSize`).
//!
//! The chunks of a base image are compressed once and kept in a cache directory named by
//! the image's sha256: `gz.bin` and `zst.bin` hold the chunks in order, `index.json`
//! (written last, so its presence means the cache is complete) their lengths and CRCs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::{Compress, Compression, FlushCompress, Status};
use serde::{Deserialize, Serialize};

/// Bytes per chunk. A multiple of gokrazy's partition alignment (MiB), so that partition 4
/// starts on a chunk boundary.
pub const CHUNK: u64 = 1024 * 1024;

/// gzip level for the chunks (gzip's default).
pub const GZIP_LEVEL: u32 = 6;

/// zstd level for the chunks.
pub const ZSTD_LEVEL: i32 = 6;

/// Version of the cache layout; a different one is rebuilt.
const CACHE_FORMAT: u32 = 1;

/// The fixed 10-byte gzip header: no name, no time, OS "unknown".
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// One compressed chunk.
#[derive(Debug, Clone)]
pub struct Compressed {
    pub crc: u32,
    pub gz: Vec<u8>,
    pub zst: Vec<u8>,
}

/// Compresses one chunk. `last` finishes the deflate stream (the image's last chunk).
pub fn compress(data: &[u8], last: bool) -> io::Result<Compressed> {
    Ok(Compressed {
        crc: crc32fast::hash(data),
        gz: deflate(data, last)?,
        zst: zstd::bulk::compress(data, ZSTD_LEVEL)?,
    })
}

/// Raw deflate of `data` from a fresh compressor, sync-flushed or finished.
pub fn deflate(data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(GZIP_LEVEL), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(256 * 1024);
        }
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete when all input is consumed and the output buffer
            // was not filled up (zlib's rule for Z_SYNC_FLUSH).
            Status::Ok | Status::BufError if !last && done_input && out.len() < out.capacity() => {
                break
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether every byte is zero.
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|b| *b == 0)
}

/// The per-chunk facts of a cached base image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub crc: u32,
    pub gz_len: u32,
    pub zst_len: u32,
    pub zero: bool,
}

/// The cache index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheIndex {
    pub format: u32,
    pub image_sha256: String,
    pub image_size: u64,
    pub chunk_size: u64,
    pub chunks: Vec<ChunkInfo>,
}

/// A base image's compressed chunks: open cache files plus the offset of every chunk.
#[derive(Debug)]
pub struct ChunkCache {
    pub dir: PathBuf,
    pub index: CacheIndex,
    pub gz: File,
    pub zst: File,
    /// Offset of chunk `i` in `gz.bin`; one extra entry holds the total.
    pub gz_offsets: Vec<u64>,
    pub zst_offsets: Vec<u64>,
}

impl ChunkCache {
    pub fn chunk_count(&self) -> usize {
        self.index.chunks.len()
    }
}

/// Number of chunks of an image of `size` bytes.
pub fn chunk_count(size: u64) -> usize {
    size.div_ceil(CHUNK) as usize
}

fn offsets(lens: impl Iterator<Item = u32>) -> Vec<u64> {
    let mut out = vec![0];
    let mut total = 0u64;
    for len in lens {
        total += u64::from(len);
        out.push(total);
    }
    out
}

/// Opens the cache of the image with `sha256`, building it first when it is missing or
/// incomplete.
pub fn open_or_build(
    cache_root: &Path,
    image: &File,
    size: u64,
    sha256: &str,
) -> io::Result<ChunkCache> {
    let dir = cache_root.join(sha256);
    if let Some(cache) = open(&dir, sha256, size)? {
        return Ok(cache);
    }
    build(&dir, image, size, sha256)?;
    open(&dir, sha256, size)?
        .ok_or_else(|| io::Error::other("the chunk cache just built cannot be read back"))
}

fn open(dir: &Path, sha256: &str, size: u64) -> io::Result<Option<ChunkCache>> {
    let text = match std::fs::read(dir.join("index.json")) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let Ok(index) = serde_json::from_slice::<CacheIndex>(&text) else {
        return Ok(None);
    };
    if index.format != CACHE_FORMAT
        || index.image_sha256 != sha256
        || index.image_size != size
        || index.chunk_size != CHUNK
        || index.chunks.len() != chunk_count(size)
    {
        return Ok(None);
    }
    let gz = File::open(dir.join("gz.bin"))?;
    let zst = File::open(dir.join("zst.bin"))?;
    let gz_offsets = offsets(index.chunks.iter().map(|c| c.gz_len));
    let zst_offsets = offsets(index.chunks.iter().map(|c| c.zst_len));
    if gz.metadata()?.len() != *gz_offsets.last().expect("total")
        || zst.metadata()?.len() != *zst_offsets.last().expect("total")
    {
        return Ok(None);
    }
    Ok(Some(ChunkCache {
        dir: dir.to_path_buf(),
        index,
        gz,
        zst,
        gz_offsets,
        zst_offsets,
    }))
}

/// Compresses every chunk of the image, on all cores, and writes the cache.
fn build(dir: &Path, image: &File, size: u64, sha256: &str) -> io::Result<()> {
    tracing::info!(sha256, "compressing the base image's chunks once (cache)");
    let started = std::time::Instant::now();
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let count = chunk_count(size);
    let zero_chunk = compress(&vec![0u8; CHUNK as usize], false)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut gz = BufWriter::with_capacity(1 << 20, File::create(tmp.join("gz.bin"))?);
    let mut zst = BufWriter::with_capacity(1 << 20, File::create(tmp.join("zst.bin"))?);
    let mut infos = Vec::with_capacity(count);
    let batch = 16 * threads;
    let mut first = 0;
    while first < count {
        let end = (first + batch).min(count);
        let results: Vec<io::Result<(Compressed, bool)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let zero_chunk = &zero_chunk;
                    s.spawn(move || {
                        let mut out = Vec::new();
                        let mut buf = vec![0u8; CHUNK as usize];
                        let mut i = first + t;
                        while i < end {
                            out.push((i, compress_chunk(image, size, i, &mut buf, zero_chunk)));
                            i += threads;
                        }
                        out
                    })
                })
                .collect();
            let mut all: Vec<(usize, io::Result<(Compressed, bool)>)> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("compression thread"))
                .collect();
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, r)| r).collect()
        });
        for result in results {
            let (c, zero) = result?;
            gz.write_all(&c.gz)?;
            zst.write_all(&c.zst)?;
            infos.push(ChunkInfo {
                crc: c.crc,
                gz_len: c.gz.len() as u32,
                zst_len: c.zst.len() as u32,
                zero,
            });
        }
        first = end;
    }
    gz.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    zst.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let index = CacheIndex {
        format: CACHE_FORMAT,
        image_sha256: sha256.to_string(),
        image_size: size,
        chunk_size: CHUNK,
        chunks: infos,
    };
    std::fs::write(tmp.join("index.json"), serde_json::to_vec(&index)?)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)?;
    tracing::info!(
        sha256,
        seconds = started.elapsed().as_secs_f64(),
        "chunk cache ready"
    );
    Ok(())
}

/// Reads chunk `i` into `buf` and returns it (shorter for the image's last chunk).
pub fn read_chunk<'a>(
    image: &File,
    size: u64,
    i: usize,
    buf: &'a mut [u8],
) -> io::Result<&'a [u8]> {
    let start = i as u64 * CHUNK;
    let len = (size - start).min(CHUNK) as usize;
    image.read_exact_at(&mut buf[..len], start)?;
    Ok(&buf[..len])
}

fn compress_chunk(
    image: &File,
    size: u64,
    i: usize,
    buf: &mut [u8],
    zero_chunk: &Compressed,
) -> io::Result<(Compressed, bool)> {
    let last = i + 1 == chunk_count(size);
    let data = read_chunk(image, size, i, buf)?;
    let zero = is_zero(data);
    if zero && !last && data.len() == CHUNK as usize {
        return Ok((zero_chunk.clone(), true));
    }
    Ok((compress(data, last)?, zero))
}

/// CRC-32 of a concatenation, from the parts' CRCs and lengths.
pub fn combine_crc(parts: impl Iterator<Item = (u32, u64)>) -> u32 {
    let mut total = crc32fast::Hasher::new();
    for (crc, len) in parts {
        total.combine(&crc32fast::Hasher::new_with_initial_len(crc, len));
    }
    total.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn chunks_make_one_gzip_member() {
        let mut data = vec![0u8; 3 * CHUNK as usize + 12345];
        for (i, b) in data.iter_mut().enumerate().skip(CHUNK as usize) {
            *b = (i * 7 % 251) as u8;
        }
        let chunks: Vec<&[u8]> = data.chunks(CHUNK as usize).collect();
        let mut gz = GZIP_HEADER.to_vec();
        let mut parts = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let compressed = compress(c, i + 1 == chunks.len()).unwrap();
            gz.extend_from_slice(&compressed.gz);
            parts.push((compressed.crc, c.len() as u64));
        }
        gz.extend_from_slice(&combine_crc(parts.into_iter()).to_le_bytes());
        gz.extend_from_slice(&(data.len() as u32).to_le_bytes());
        // A single-member decoder must read everything.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn zstd_frames_concatenate() {
        let a = vec![1u8; 1000];
        let b = vec![2u8; 2000];
        let mut z = compress(&a, false).unwrap().zst;
        z.extend(compress(&b, true).unwrap().zst);
        let out = zstd::stream::decode_all(&z[..]).unwrap();
        assert_eq!(out.len(), 3000);
        assert_eq!(&out[..1000], &a[..]);
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0; 100]));
        let mut d = vec![0u8; 100];
        d[99] = 1;
        assert!(!is_zero(&d));
        d[99] = 0;
        d[3] = 1;
        assert!(!is_zero(&d));
    }
}
