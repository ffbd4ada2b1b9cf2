//! Server-sent events as LLM providers send them: splitting a byte stream into whole
//! events (a blank line ends one), and reading an event's `event:` name and `data:`.
//!
//! Every LLM body wrapper (usage metering, translation, the usage-chunk filter, the
//! response cache) and the chunk hooks cut streams with the same [`Splitter`], so an
//! event split across frames is seen whole exactly once.

use bytes::{Bytes, BytesMut};

/// An event larger than this without a terminator is passed on as it is.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Returns the end offset (including the blank line) of the first complete SSE event.
pub fn event_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = memchr::memchr2(b'\n', b'\r', &buf[from..]) {
        let i = from + at;
        match (buf[i], buf.get(i + 1)) {
            (b'\n', Some(b'\n')) | (b'\r', Some(b'\r')) => return Some(i + 2),
            (b'\r', Some(b'\n')) if buf.get(i + 2..i + 4) == Some(b"\r\n") => return Some(i + 4),
            _ => from = i + 1,
        }
    }
    None
}

/// Whether `event` may carry a `usage` object: a `"usage"` key whose value starts
/// with `{`. Every chunk of an OpenAI stream that asked for usage says
/// `"usage":null`, and those need no parsing. A yes is only a maybe: the JSON must
/// still be read.
pub fn may_have_usage(event: &[u8]) -> bool {
    let blank = |b: &u8| b.is_ascii_whitespace();
    memchr::memmem::find_iter(event, b"\"usage\"").any(|at| {
        let rest = &event[at + 7..];
        let rest = &rest[rest.iter().take_while(|b| blank(b)).count()..];
        let Some(rest) = rest.strip_prefix(b":") else {
            return false;
        };
        rest.iter().find(|b| !blank(b)) == Some(&b'{')
    })
}

/// Cuts a stream of frames into whole events, keeping at most one incomplete event.
#[derive(Debug, Default)]
pub struct Splitter {
    pending: BytesMut,
}

impl Splitter {
    /// Adds the frame `data` and returns every event it completed, in order: events
    /// that lie in `data` whole are slices of it, not copies. An incomplete event that
    /// grew past [`MAX_EVENT_BYTES`] is returned as it is.
    pub fn push(&mut self, data: &Bytes) -> Vec<Bytes> {
        let mut events = Vec::new();
        // The common case: a frame that is exactly one or more whole events.
        if self.pending.is_empty() {
            let mut start = 0;
            while let Some(end) = event_end(&data[start..]) {
                events.push(data.slice(start..start + end));
                start += end;
            }
            self.pending.extend_from_slice(&data[start..]);
        } else {
            self.pending.extend_from_slice(data);
            while let Some(end) = event_end(&self.pending) {
                events.push(self.pending.split_to(end).freeze());
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            events.push(self.pending.split().freeze());
        }
        events
    }

    /// Like [`Splitter::push`], but hands each completed event to `f` without copying
    /// it out of `data` when it lies there whole (the usage meter reads, never keeps).
    pub fn each(&mut self, data: &[u8], mut f: impl FnMut(&[u8])) {
        if self.pending.is_empty() {
            let mut rest = data;
            while let Some(end) = event_end(rest) {
                f(&rest[..end]);
                rest = &rest[end..];
            }
            self.pending.extend_from_slice(rest);
        } else {
            self.pending.extend_from_slice(data);
            while let Some(end) = event_end(&self.pending) {
                f(&self.pending.split_to(end));
            }
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            f(&self.pending.split());
        }
    }

    /// What is left when the stream ends: an event without its blank line, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

/// The `event:` name of an event, when it has one.
pub fn event_name(event: &[u8]) -> Option<&str> {
    lines(event).find_map(|l| field(l, b"event"))
}

/// The `data:` of an event; several data lines are joined with `\n`, as the SSE
/// specification says. Borrowed when there is one line (the common case).
pub fn data(event: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let mut found: Option<std::borrow::Cow<'_, str>> = None;
    for value in lines(event).filter_map(|l| field(l, b"data")) {
        found = Some(match found {
            None => std::borrow::Cow::Borrowed(value),
            Some(prev) => std::borrow::Cow::Owned(format!("{prev}\n{value}")),
        });
    }
    found
}

fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    event
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// The value of line `line` when it is field `name` (`name: value` or `name:value`).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    std::str::from_utf8(rest).ok()
}

/// What an SSE body wrapper does with each whole event of the stream it wraps.
pub trait Rewrite: Send + 'static {
    /// One whole event; what goes to the client is pushed to `out`.
    fn event(&mut self, event: Bytes, out: &mut Vec<Bytes>);

    /// What was left after the last blank line when the stream ended; by default an
    /// event like the others.
    fn rest(&mut self, rest: Bytes, out: &mut Vec<Bytes>) {
        self.event(rest, out);
    }

    /// The end of the stream, after [`Rewrite::rest`]; anything more for the client is
    /// pushed to `out`.
    fn finish(&mut self, out: &mut Vec<Bytes>) {
        let _ = out;
    }
}

pin_project_lite::pin_project! {
    /// A response body rewritten event by event by `R`; trailers pass after the last
    /// event.
    struct Rewritten<R> {
        #[pin]
        inner: crate::body::Body,
        splitter: Splitter,
        rewrite: R,
        out: std::collections::VecDeque<Bytes>,
        trailers: Option<http::HeaderMap>,
        done: bool,
    }
}

/// Wraps `body` so each of its events goes through `rewrite`, never more than one
/// incomplete event held.
pub fn rewrite<R: Rewrite>(body: crate::body::Body, rewrite: R) -> crate::body::Body {
    http_body_util::BodyExt::boxed_unsync(Rewritten {
        inner: body,
        splitter: Splitter::default(),
        rewrite,
        out: std::collections::VecDeque::new(),
        trailers: None,
        done: false,
    })
}

impl<R: Rewrite> http_body::Body for Rewritten<R> {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use http_body::Frame;
        use std::task::Poll;
        let mut this = self.project();
        loop {
            if let Some(event) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            if *this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let mut produced = Vec::new();
            let ended = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => true,
                Poll::Ready(Some(Err(e))) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        for event in this.splitter.push(&data) {
                            this.rewrite.event(event, &mut produced);
                        }
                        false
                    }
                    // Trailers end the body: what the splitter holds goes first.
                    Err(other) => {
                        *this.trailers = other.into_trailers().ok();
                        true
                    }
                },
            };
            if ended {
                *this.done = true;
                if let Some(rest) = this.splitter.finish() {
                    this.rewrite.rest(rest, &mut produced);
                }
                this.rewrite.finish(&mut produced);
            }
            this.out.extend(produced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_event_boundaries() {
        assert_eq!(event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\nx"), Some(11));
        assert_eq!(event_end(b"data: a\n"), None);
        assert_eq!(event_end(b"a\n\r\n\r\nb"), Some(6));
        assert_eq!(event_end(b"a\r\rb"), Some(3));
        assert_eq!(event_end(b"a\r\n\r"), None);
    }

    #[test]
    fn knows_which_events_may_carry_usage() {
        assert!(may_have_usage(
            b"data: {\"usage\":{\"prompt_tokens\":1}}\n\n"
        ));
        assert!(may_have_usage(b"data: {\"usage\" : \n {}}"));
        assert!(!may_have_usage(
            b"data: {\"choices\":[],\"usage\":null}\n\n"
        ));
        assert!(!may_have_usage(b"data: {\"text\":\"\\\"usage\\\": {\"}"));
        assert!(!may_have_usage(b"data: {\"usage\""));
        assert!(may_have_usage(b"{\"usage\":null,\"x\":{\"usage\":{}}}"));
    }

    #[test]
    fn whole_events_are_slices_of_the_frame() {
        let frame = Bytes::from_static(b"data: a\n\ndata: b\n\ndata: c");
        let events = Splitter::default().push(&frame);
        assert_eq!(events.len(), 2);
        let within = frame.as_ptr_range();
        for event in &events {
            assert!(within.contains(&event.as_ptr()), "{event:?} was copied");
        }
    }

    #[test]
    fn splits_across_frames_and_reads_fields() {
        let mut s = Splitter::default();
        assert!(
            s.push(&Bytes::from_static(b"event: message_start\ndata: {\"a\""))
                .is_empty()
        );
        let events = s.push(&Bytes::from_static(
            b":1}\n\ndata: x\ndata: y\n\ndata: tail",
        ));
        assert_eq!(events.len(), 2);
        assert_eq!(event_name(&events[0]), Some("message_start"));
        assert_eq!(data(&events[0]).as_deref(), Some("{\"a\":1}"));
        assert_eq!(data(&events[1]).as_deref(), Some("x\ny"));
        assert_eq!(s.finish().as_deref(), Some(&b"data: tail"[..]));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn each_sees_the_same_events_as_push() {
        let frames: [&[u8]; 3] = [b"data: a\n\ndata: b", b"b\n\n", b"data: c\n\ndata: tail"];
        let (mut pushed, mut each) = (Splitter::default(), Splitter::default());
        let mut a = Vec::new();
        let mut b = Vec::new();
        for f in frames {
            a.extend(pushed.push(&Bytes::copy_from_slice(f)));
            each.each(f, |e| b.push(Bytes::copy_from_slice(e)));
        }
        assert_eq!(a, b);
        assert_eq!(b.len(), 3);
        assert_eq!(pushed.finish(), each.finish());
    }
}
