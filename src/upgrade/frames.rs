//! WebSocket frame boundaries in a byte stream that is passed on as it is: the splice
//! reads each frame header (2 to 14 bytes) as it goes by and skips the payload by its
//! length, so it always knows whether it stands between two frames (where a close frame
//! may be put in at shutdown) without buffering or copying payloads. Also the close
//! frame itself, as a server (unmasked) or a client (masked) writes it (RFC 6455 §5).

/// Where a direction of the stream stands.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Header bytes of the frame being read, until the header is whole.
    header: Vec<u8>,
    /// Payload bytes still to come of the current frame.
    remaining: u64,
    /// The stream is not WebSocket framing (a header made no sense): boundaries unknown.
    lost: bool,
    /// The last whole frame seen was a close frame.
    pub closed: bool,
}

impl Tracker {
    /// Follows `data`, the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.lost {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.remaining -= skip as u64;
                data = &data[skip..];
                continue;
            }
            self.header.push(data[0]);
            data = &data[1..];
            if let Some((len, close)) = parse_header(&self.header) {
                self.header.clear();
                self.remaining = len;
                self.closed = close;
            } else if self.header.len() >= 14 {
                self.lost = true;
            }
        }
    }

    /// Whether the stream stands between two frames.
    pub fn at_boundary(&self) -> bool {
        !self.lost && self.remaining == 0 && self.header.is_empty()
    }
}

/// The payload length and whether it is a close frame, once `h` is a whole header.
fn parse_header(h: &[u8]) -> Option<(u64, bool)> {
    let [b0, b1, rest @ ..] = h else {
        return None;
    };
    let close = b0 & 0x0f == 0x8;
    let masked = b1 & 0x80 != 0;
    let mask = if masked { 4 } else { 0 };
    let (len, ext) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            2,
        ),
        127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
        n => (u64::from(n), 0),
    };
    (rest.len() == ext + mask).then_some((len, close))
}

/// A close frame with `code` (1001: going away) and `reason`, masked with `mask` when a
/// client sends it.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    let mut out = vec![0x88, payload.len() as u8];
    if let Some(key) = mask {
        out[1] |= 0x80;
        out.extend_from_slice(&key);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_frames_split_anywhere() {
        // A masked 300-byte binary frame (16-bit length), then an unmasked close frame.
        let mut stream = vec![0x82, 0x80 | 126, 0x01, 0x2c, 1, 2, 3, 4];
        stream.extend(std::iter::repeat_n(7u8, 300));
        stream.extend(close_frame(1000, "bye", None));
        for cut in 0..stream.len() {
            let mut t = Tracker::default();
            t.feed(&stream[..cut]);
            t.feed(&stream[cut..]);
            assert!(t.at_boundary(), "cut at {cut}");
            assert!(t.closed);
        }
        let mut t = Tracker::default();
        t.feed(&stream[..10]);
        assert!(!t.at_boundary());
    }

    #[test]
    fn a_masked_close_frame_unmasks_to_its_code() {
        let f = close_frame(1001, "going away", Some([9, 8, 7, 6]));
        assert_eq!(f[0], 0x88);
        assert_eq!(f[1], 0x80 | 12);
        let payload: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ f[2 + i % 4])
            .collect();
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        assert_eq!(&payload[2..], b"going away");
        let mut t = Tracker::default();
        t.feed(&f);
        assert!(t.at_boundary() && t.closed);
    }

    #[test]
    fn follows_a_masked_frame_with_a_64_bit_length() {
        let len: u64 = 2 * 1024 * 1024 + 17;
        let mut stream = vec![0xc2, 0x80 | 127];
        stream.extend_from_slice(&len.to_be_bytes());
        stream.extend_from_slice(&[1, 2, 3, 4]);
        stream.extend(std::iter::repeat_n(0u8, len as usize));
        stream.extend(close_frame(1000, "", Some([5, 6, 7, 8])));
        let mut t = Tracker::default();
        for chunk in stream.chunks(16 * 1024) {
            t.feed(chunk);
        }
        assert!(t.at_boundary());
        assert!(t.closed);
    }
}
