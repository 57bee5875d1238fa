//! Streaming a personalized image: a download is a list of byte ranges of files the portal
//! already has (the base image, the cached chunks, the personalized /perm and its changed
//! chunks) plus a few bytes made on the spot (the gzip header and trailer). Nothing is
//! compressed or copied per request: the files are memory-mapped and their pages go from
//! the page cache straight into the socket.
//!
//! Mapping is safe here because none of these files is ever changed in place: base images
//! and caches are written to a temporary name and renamed, and a personalized image's
//! directory is only ever removed whole (an unlinked file stays readable while mapped).
//!
//! Every format has an exact length known before the first byte, so every format answers
//! with `Content-Length` and supports `Range` (single ranges; `If-Range` with the ETag, so
//! an interrupted download resumes only on the same image).

use std::fs::File;
use std::io;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use memmap2::Mmap;

use super::base::BaseImage;
use super::chunks;
use super::personalize::Personalized;

/// The download formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The raw disk image.
    Img,
    /// One gzip member of independently deflated chunks.
    ImgGz,
    /// zstd frames, one per chunk, each with its content size.
    ImgZst,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Img, Format::ImgGz, Format::ImgZst];

    /// The file name suffix, also the database's name of the format.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Img => "img",
            Format::ImgGz => "img.gz",
            Format::ImgZst => "img.zst",
        }
    }

    pub fn from_suffix(text: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.suffix() == text)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Img => "application/octet-stream",
            Format::ImgGz => "application/gzip",
            Format::ImgZst => "application/zstd",
        }
    }
}

/// A piece of a download.
#[derive(Debug, Clone)]
enum Piece {
    /// `len` bytes of a mapped file from `offset`.
    File {
        file: Arc<Mmap>,
        offset: u64,
        len: u64,
    },
    /// Bytes made for this download.
    Bytes(Bytes),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::File { len, .. } => *len,
            Piece::Bytes(b) => b.len() as u64,
        }
    }
}

/// A download: pieces laid end to end.
#[derive(Debug, Clone)]
pub struct Download {
    pieces: Vec<Piece>,
    /// Start of each piece in the download.
    starts: Vec<u64>,
    len: u64,
}

impl Download {
    fn new() -> Self {
        Download {
            pieces: Vec::new(),
            starts: Vec::new(),
            len: 0,
        }
    }

    fn push_file(&mut self, file: &Arc<Mmap>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        // Contiguous ranges of the same file become one piece.
        if let Some(Piece::File {
            file: last_file,
            offset: last_offset,
            len: last_len,
        }) = self.pieces.last_mut()
        {
            if Arc::ptr_eq(last_file, file) && *last_offset + *last_len == offset {
                *last_len += len;
                self.len += len;
                return;
            }
        }
        self.starts.push(self.len);
        self.pieces.push(Piece::File {
            file: file.clone(),
            offset,
            len,
        });
        self.len += len;
    }

    fn push_bytes(&mut self, bytes: Vec<u8>) {
        self.starts.push(self.len);
        self.len += bytes.len() as u64;
        self.pieces.push(Piece::Bytes(Bytes::from(bytes)));
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the download's bytes from `pos` into `buf`; returns how many (less only at
    /// the end).
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0usize;
        for part in self.slices(pos, (pos + buf.len() as u64).min(self.len)) {
            buf[done..done + part.len()].copy_from_slice(&part);
            done += part.len();
        }
        Ok(done)
    }

    /// The bytes `start..end` as slices of the pieces, without copying: mapped pages are
    /// shared with the page cache and released when the last slice is dropped.
    pub fn slices(&self, start: u64, end: u64) -> Vec<Bytes> {
        let end = end.min(self.len);
        if start >= end {
            return Vec::new();
        }
        let mut i = match self.starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let mut out = Vec::new();
        let mut pos = start;
        while pos < end {
            let piece = &self.pieces[i];
            let within = pos - self.starts[i];
            let take = (piece.len() - within).min(end - pos);
            out.push(match piece {
                Piece::File { file, offset, .. } => {
                    let from = (offset + within) as usize;
                    Bytes::from_owner(MappedRange {
                        map: file.clone(),
                        range: from..from + take as usize,
                    })
                }
                Piece::Bytes(b) => b.slice(within as usize..(within + take) as usize),
            });
            pos += take;
            i += 1;
        }
        out
    }
}

/// A range of a mapped file that a `Bytes` can own.
struct MappedRange {
    map: Arc<Mmap>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

/// Maps a whole file read-only.
fn map(file: &File) -> io::Result<Arc<Mmap>> {
    // SAFETY: the files served are never modified or truncated in place (module comment);
    // that is the condition under which reading a mapping is sound.
    let map = unsafe { Mmap::map(file)? };
    Ok(Arc::new(map))
}

/// The mapped files of one personalized image.
pub struct Sources {
    pub base: Arc<Mmap>,
    pub base_gz: Arc<Mmap>,
    pub base_zst: Arc<Mmap>,
    pub perm: Arc<Mmap>,
    pub gz: Arc<Mmap>,
    pub zst: Arc<Mmap>,
}

impl Sources {
    pub fn open(base: &BaseImage, personal: &Personalized) -> io::Result<Sources> {
        Ok(Sources {
            base: map(&base.file)?,
            base_gz: map(&base.chunks.gz)?,
            base_zst: map(&base.chunks.zst)?,
            perm: map(&personal.perm)?,
            gz: map(&personal.gz)?,
            zst: map(&personal.zst)?,
        })
    }
}

/// Lays out a download of the personalized image in `format`.
pub fn layout(
    base: &BaseImage,
    personal: &Personalized,
    sources: &Sources,
    format: Format,
) -> Download {
    let mut d = Download::new();
    match format {
        Format::Img => {
            let perm_end = base.perm_offset + base.perm_len;
            d.push_file(&sources.base, 0, base.perm_offset);
            d.push_file(&sources.perm, 0, base.perm_len);
            d.push_file(&sources.base, perm_end, base.size - perm_end);
        }
        Format::ImgGz | Format::ImgZst => {
            let gz = format == Format::ImgGz;
            if gz {
                d.push_bytes(chunks::GZIP_HEADER.to_vec());
            }
            let changed = personal.changed_offsets();
            let mut next = changed.iter().peekable();
            let cache = &base.chunks;
            for i in 0..cache.chunk_count() {
                match next.peek() {
                    Some((index, gz_off, gz_len, zst_off, zst_len)) if *index == i => {
                        if gz {
                            d.push_file(&sources.gz, *gz_off, u64::from(*gz_len));
                        } else {
                            d.push_file(&sources.zst, *zst_off, u64::from(*zst_len));
                        }
                        next.next();
                    }
                    _ => {
                        if gz {
                            let off = cache.gz_offsets[i];
                            d.push_file(&sources.base_gz, off, cache.gz_offsets[i + 1] - off);
                        } else {
                            let off = cache.zst_offsets[i];
                            d.push_file(&sources.base_zst, off, cache.zst_offsets[i + 1] - off);
                        }
                    }
                }
            }
            if gz {
                let mut trailer = personal.meta.crc32.to_le_bytes().to_vec();
                trailer.extend_from_slice(&(personal.meta.size as u32).to_le_bytes());
                d.push_bytes(trailer);
            }
        }
    }
    debug_assert_eq!(
        d.len(),
        match format {
            Format::Img => personal.meta.size,
            Format::ImgGz => personal.meta.gz_size,
            Format::ImgZst => personal.meta.zst_size,
        }
    );
    d
}

/// A byte range asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No (usable) Range header: the whole thing.
    Whole,
    /// `start..=end`, both within the download.
    Part { start: u64, end: u64 },
    /// A range that lies outside the download.
    Unsatisfiable,
}

/// Reads a `Range` header against a download of `len` bytes. Multiple ranges and anything
/// that is not a byte range are served whole, as RFC 9110 allows.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeAsk {
    let Some(value) = value else {
        return RangeAsk::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => RangeAsk::Unsatisfiable,
            Ok(n) if len > 0 => RangeAsk::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Ok(_) => RangeAsk::Unsatisfiable,
            Err(_) => RangeAsk::Whole,
        },
        (false, _) => {
            let Ok(start) = first.parse::<u64>() else {
                return RangeAsk::Whole;
            };
            let end = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match last.parse::<u64>() {
                    Ok(end) if end >= start => end.min(len.saturating_sub(1)),
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= len {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part { start, end }
            }
        }
        (true, true) => RangeAsk::Whole,
    }
}

/// How much is sent per step of the body.
const STEP: u64 = 1 << 20;

/// What one response serves.
pub struct Serve {
    pub download: Download,
    pub format: Format,
    pub etag: String,
    pub filename: String,
    /// Held until the body is finished or dropped (download slots).
    pub guard: Box<dyn Send + Sync + 'static>,
    /// Where to count the bytes sent, for the progress bar.
    pub progress: Option<(super::Images, uuid::Uuid)>,
}

/// Whether the request's Range applies: without `If-Range`, always; with it, only when it
/// names this image's ETag.
pub fn range_applies(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

/// The answer to a GET (or HEAD, with `head`), honouring `Range`.
pub fn respond(serve: Serve, headers: &HeaderMap, head: bool) -> Response {
    let len = serve.download.len();
    let ask = if range_applies(headers, &serve.etag) {
        parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            len,
        )
    } else {
        RangeAsk::Whole
    };
    let mut response_headers = HeaderMap::new();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(serve.format.content_type()),
    );
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&serve.etag) {
        response_headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", serve.filename)) {
        response_headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let (status, start, end) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, len),
        RangeAsk::Part { start, end } => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                response_headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, start, end + 1)
        }
        RangeAsk::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response_headers.insert(header::CONTENT_RANGE, v);
            }
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                response_headers,
                format!("The range asked for lies beyond the end of the image ({len} bytes)."),
            )
                .into_response();
        }
    };
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if head {
        return (status, response_headers, Body::empty()).into_response();
    }
    let progress = serve
        .progress
        .map(|(images, group)| images.track(group, serve.filename.clone(), end - start));
    let body = body(serve.download, start, end, serve.guard, progress);
    (status, response_headers, body).into_response()
}

/// The bytes `start..end` of `download` as a response body. A blocking thread stays a few
/// steps ahead of the network and touches every page of the next step, so that reading
/// from disk (a page not yet cached) blocks that thread and never the async workers.
pub fn body(
    download: Download,
    start: u64,
    end: u64,
    guard: Box<dyn Send + Sync + 'static>,
    progress: Option<Arc<super::Progress>>,
) -> Body {
    /// Marks the progress finished however the body ends.
    struct Finish(Option<Arc<super::Progress>>);
    impl Drop for Finish {
        fn drop(&mut self) {
            if let Some(p) = &self.0 {
                p.finish();
            }
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let finish = Finish(progress);
        let mut pos = start;
        while pos < end {
            let step_end = (pos + STEP).min(end);
            for part in download.slices(pos, step_end) {
                touch_pages(&part);
                if tx.blocking_send(Ok(part)).is_err() {
                    return; // the client went away
                }
            }
            if let Some(p) = &finish.0 {
                p.add(step_end - pos);
            }
            pos = step_end;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

/// Reads one byte of every page, so the pages are in memory and mapped before the async
/// side sends them.
fn touch_pages(bytes: &[u8]) {
    const PAGE: usize = 4096;
    let mut sum = 0u8;
    for i in (0..bytes.len()).step_by(PAGE) {
        sum = sum.wrapping_add(bytes[i]);
    }
    std::hint::black_box(sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), RangeAsk::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            RangeAsk::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            RangeAsk::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeAsk::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            RangeAsk::Part { start: 50, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=200-300"), 100),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeAsk::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=9-2"), 100), RangeAsk::Whole);
    }

    #[test]
    fn pieces_read_across_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = map(&File::open(&path).unwrap()).unwrap();
        let mut d = Download::new();
        d.push_bytes(b"ab".to_vec());
        d.push_file(&file, 2, 3);
        d.push_file(&file, 5, 2); // merges with the piece before
        d.push_bytes(b"z".to_vec());
        assert_eq!(d.len(), 8);
        assert_eq!(d.pieces.len(), 3);
        let mut buf = [0u8; 8];
        assert_eq!(d.read_at(0, &mut buf).unwrap(), 8);
        assert_eq!(&buf, b"ab23456z");
        let mut buf = [0u8; 4];
        assert_eq!(d.read_at(1, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"b234");
        assert_eq!(d.read_at(7, &mut buf).unwrap(), 1);
        assert_eq!(d.read_at(8, &mut buf).unwrap(), 0);
    }
}
