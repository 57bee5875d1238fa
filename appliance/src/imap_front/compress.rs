//! COMPRESS=DEFLATE (RFC 4978) at the front: raw deflate (no zlib header) in both
//! directions, the server's output flushed (sync flush) whenever it has nothing more to
//! send, so that every response reaches the client at once.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most bytes one call of [`Inflater::inflate`] makes, so that a small, highly compressed
/// input cannot make the front hold a huge buffer at once.
pub const MAX_INFLATE_OUTPUT: usize = 1 << 20;

/// The server-to-client direction.
pub struct Deflater(Compress);

impl Deflater {
    /// A fresh raw-deflate stream.
    pub fn new() -> Deflater {
        Deflater(Compress::new(Compression::default(), false))
    }

    /// Compresses `input` and sync-flushes, appending to `out`.
    pub fn deflate(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        loop {
            out.reserve(input.len() / 2 + 1024);
            let before = self.0.total_in();
            self.0
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            let consumed = (self.0.total_in() - before) as usize;
            input = &input[consumed..];
            // The flush is complete once the output did not fill the space it had.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// The client-to-server direction.
pub struct Inflater {
    inner: Decompress,
    /// Input not inflated yet (the output bound was reached).
    pending: Vec<u8>,
    /// The last call stopped at the output bound (output may be waiting inside).
    saturated: bool,
}

impl Inflater {
    /// A fresh raw-deflate stream.
    pub fn new() -> Inflater {
        Inflater {
            inner: Decompress::new(false),
            pending: Vec::new(),
            saturated: false,
        }
    }

    /// Whether input is waiting for another call.
    pub fn has_pending(&self) -> bool {
        self.saturated || !self.pending.is_empty()
    }

    /// Adds `input` and appends at most [`MAX_INFLATE_OUTPUT`] inflated bytes to `out`;
    /// the rest waits for the next call (see [`Inflater::has_pending`]).
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        self.pending.extend_from_slice(input);
        let limit = out.len() + MAX_INFLATE_OUTPUT;
        loop {
            let room = limit.saturating_sub(out.len()).min(64 * 1024);
            self.saturated = room == 0;
            if self.saturated {
                return Ok(());
            }
            out.reserve(room);
            let spare = out.capacity() - out.len();
            let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
            // Never let it write beyond `limit`.
            let mut chunk = Vec::with_capacity(room.min(spare));
            let status = self
                .inner
                .decompress_vec(&self.pending, &mut chunk, FlushDecompress::None)
                .map_err(std::io::Error::other)?;
            out.extend_from_slice(&chunk);
            let consumed = (self.inner.total_in() - before_in) as usize;
            let produced = (self.inner.total_out() - before_out) as usize;
            self.pending.drain(..consumed);
            if status == Status::StreamEnd {
                return Err(std::io::Error::other("the client ended its deflate stream"));
            }
            if produced == 0 && (consumed == 0 || self.pending.is_empty()) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut d = Deflater::new();
        let mut wire = Vec::new();
        d.deflate(b"a1 NOOP\r\n", &mut wire).unwrap();
        let first = wire.len();
        d.deflate(&vec![b'x'; 300_000], &mut wire).unwrap();
        let mut i = Inflater::new();
        let mut plain = Vec::new();
        i.inflate(&wire[..first], &mut plain).unwrap();
        // The first flush alone yields the whole first command.
        assert_eq!(plain, b"a1 NOOP\r\n");
        for piece in wire[first..].chunks(7) {
            i.inflate(piece, &mut plain).unwrap();
        }
        while i.has_pending() {
            i.inflate(&[], &mut plain).unwrap();
        }
        assert_eq!(plain.len(), 9 + 300_000);
    }

    #[test]
    fn output_is_bounded() {
        let mut d = Deflater::new();
        let mut wire = Vec::new();
        d.deflate(&vec![0u8; 5 * MAX_INFLATE_OUTPUT], &mut wire)
            .unwrap();
        let mut i = Inflater::new();
        let mut plain = Vec::new();
        i.inflate(&wire, &mut plain).unwrap();
        assert!(plain.len() <= MAX_INFLATE_OUTPUT);
        assert!(i.has_pending());
    }
}
