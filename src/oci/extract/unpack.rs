//! Decompressing layer blobs: gzip (multi-member) with `flate2`, zstd (multi-frame) with
//! the pure-Rust `ruzstd`, or plain tar, all through a byte [`Budget`] shared by every
//! layer of an image.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Counts decompressed bytes against a shared budget.
pub struct Budget<R> {
    inner: R,
    /// Bytes still allowed.
    pub left: u64,
    /// Set once a read went over the budget.
    pub exceeded: bool,
}

impl<R> Budget<R> {
    /// Allows `left` bytes from `inner`.
    pub fn new(inner: R, left: u64) -> Self {
        Budget {
            inner,
            left,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(std::io::Error::other("decompressed size limit reached"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Zstandard, frame after frame (a stream may hold several).
struct Zstd<R: BufRead> {
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> Zstd<R> {
    fn new(inner: R) -> std::io::Result<Self> {
        let decoder = ruzstd::decoding::StreamingDecoder::new(inner)
            .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?;
        Ok(Zstd {
            decoder: Some(decoder),
        })
    }
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(done) = self.decoder.take() else {
                return Ok(0);
            };
            let mut inner = done.into_inner();
            if !inner.fill_buf()?.is_empty() {
                self.decoder = Some(
                    ruzstd::decoding::StreamingDecoder::new(inner)
                        .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?,
                );
            }
        }
    }
}

/// Opens a layer blob, detecting the compression from its first bytes (the media type
/// is checked in `format`; the bytes decide how they are read).
pub fn open(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut file = BufReader::new(std::fs::File::open(path)?);
    let head = file.fill_buf()?;
    Ok(match head {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(Zstd::new(file)?),
        _ => Box::new(file),
    })
}
