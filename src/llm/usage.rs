//! Token usage extracted from provider responses, JSON or SSE, for OpenAI-compatible APIs
//! (chat/completions, responses, embeddings) and Anthropic messages.
//!
//! `prompt_tokens` counts every input token for both providers: Anthropic reports
//! `input_tokens` without its cache reads and writes, so those are added back. The
//! [`Meter`] reads a stream event by event, so nobody has to keep the whole body.

mod parts;

pub use crate::plugin::TokenUsage;
use parts::Parts;

/// Folds one JSON object (a whole response or one SSE event) into `usage`; says
/// whether it carried a usage object.
fn absorb(usage: &mut TokenUsage, v: &Parts) -> bool {
    let mut found = false;
    // OpenAI chat/completions and embeddings: usage.{prompt,completion}_tokens.
    // OpenAI responses: usage.{input,output}_tokens, also inside response.completed events.
    // Anthropic: usage.{input,output}_tokens; message_start carries message.usage.
    for holder in [&v.top, &v.response, &v.message] {
        if let Some(m) = holder.model.as_ref().filter(|m| !m.is_empty()) {
            usage.model.clone_from(m);
        }
        if let Some(u) = &holder.usage {
            found = true;
            absorb_usage(usage, u);
        }
    }
    found
}

/// Folds one `usage` object in. Counts only grow: a stream repeats or completes
/// earlier counts (Anthropic's `message_delta` carries the final output count).
fn absorb_usage(usage: &mut TokenUsage, u: &parts::Usage) {
    // OpenAI: cached tokens are part of prompt_tokens (chat) or input_tokens (responses).
    let openai_cached = u.prompt_cached.or(u.input_cached);
    // Anthropic: cache reads and writes are not part of input_tokens.
    let read = u.cache_read_input_tokens;
    let written = u.cache_creation_input_tokens;
    if let Some(c) = openai_cached.or(read) {
        usage.cached_input_tokens = usage.cached_input_tokens.max(c);
    }
    if let Some(w) = written {
        usage.cache_creation_tokens = usage.cache_creation_tokens.max(w);
    }
    let prompt = u.prompt_tokens.or_else(|| {
        u.input_tokens.map(|i| {
            i.saturating_add(read.unwrap_or(0))
                .saturating_add(written.unwrap_or(0))
        })
    });
    if let Some(p) = prompt {
        usage.prompt_tokens = usage.prompt_tokens.max(p);
    }
    if let Some(c) = u.completion_tokens.or(u.output_tokens) {
        usage.completion_tokens = usage.completion_tokens.max(c);
    }
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Usage read incrementally: feed it each whole SSE event of a stream (or one JSON
/// body), then ask for the usage.
#[derive(Debug, Default)]
pub struct Meter {
    usage: TokenUsage,
    found: bool,
}

impl Meter {
    /// Reads one whole SSE event. Events without a `usage` object (most content deltas,
    /// and OpenAI's `"usage":null` chunks) are skipped without parsing their JSON,
    /// unless they may name the model and none was seen yet.
    pub fn event(&mut self, event: &[u8]) {
        let wanted = crate::llm::sse::may_have_usage(event)
            || (self.usage.model.is_empty() && contains(event, b"model"));
        if !wanted {
            return;
        }
        let Some(data) = crate::llm::sse::data(event) else {
            return;
        };
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        if let Ok(v) = super::lenient::from_slice::<Parts>(data.as_bytes()) {
            self.found |= absorb(&mut self.usage, &v);
        }
    }

    /// Reads a whole JSON response body.
    pub fn json(&mut self, body: &[u8]) {
        if let Ok(v) = super::lenient::from_slice::<Parts>(body) {
            self.found |= absorb(&mut self.usage, &v);
        }
    }

    /// The usage read so far; `None` until a usage object was seen.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.found.then(|| self.usage.clone())
    }
}

/// Parses a response body (JSON, or an SSE stream of JSON events) for usage.
pub fn parse(body: &[u8]) -> Option<TokenUsage> {
    let mut meter = Meter::default();
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        meter.json(body);
    } else {
        // Each `data:` line on its own, as before the meter: every provider event is
        // one line of JSON, and a body cut short or without blank lines still reads.
        for line in body.split(|&b| b == b'\n') {
            if line.starts_with(b"data:") {
                meter.event(line);
            }
        }
    }
    meter.usage()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn usage(model: &str, prompt: u64, completion: u64, cached: u64, created: u64) -> TokenUsage {
        TokenUsage {
            model: model.into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_input_tokens: cached,
            cache_creation_tokens: created,
        }
    }

    /// Feeds `stream` to a fresh meter one event at a time.
    fn meter(stream: &[u8]) -> Option<TokenUsage> {
        let mut meter = Meter::default();
        let mut splitter = crate::llm::sse::Splitter::default();
        for event in splitter.push(&Bytes::copy_from_slice(stream)) {
            meter.event(&event);
        }
        assert_eq!(splitter.finish(), None);
        meter.usage()
    }

    #[test]
    fn openai_json_and_stream() {
        let json = br#"{"model":"gpt-4o-mini","usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
        assert_eq!(parse(json), Some(usage("gpt-4o-mini", 12, 5, 0, 0)));
        let sse = b"data: {\"model\":\"m\",\"choices\":[]}\n\ndata: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n";
        assert_eq!(parse(sse).map(|u| u.total()), Some(12));
    }

    #[test]
    fn anthropic_stream() {
        let sse = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        assert_eq!(parse(sse), Some(usage("claude-x", 25, 15, 0, 0)));
        assert_eq!(parse(b"not json"), None);
    }

    #[test]
    fn openai_cached_tokens_chat_and_responses() {
        let chat = br#"{"model":"gpt-4o","usage":{"prompt_tokens":2006,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}}"#;
        assert_eq!(parse(chat), Some(usage("gpt-4o", 2006, 300, 1920, 0)));
        let responses = br#"{"object":"response","model":"gpt-4.1","usage":{"input_tokens":1500,"input_tokens_details":{"cached_tokens":1024},"output_tokens":40,"output_tokens_details":{"reasoning_tokens":0}}}"#;
        assert_eq!(parse(responses), Some(usage("gpt-4.1", 1500, 40, 1024, 0)));
        // A null usage (OpenAI stream chunks before the last) is no usage.
        assert_eq!(parse(br#"{"model":"gpt-4o","usage":null}"#), None);
    }

    #[test]
    fn anthropic_cache_reads_and_writes_join_the_prompt() {
        let json = br#"{"type":"message","model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":50,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":70}}"#;
        assert_eq!(
            parse(json),
            Some(usage("claude-sonnet-4-5-20250929", 5050, 70, 3000, 2000))
        );
        let sse = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4000,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":22}}\n\n";
        assert_eq!(
            parse(sse),
            Some(usage("claude-haiku-4-5", 4010, 22, 4000, 0))
        );
    }

    #[test]
    fn meter_reads_an_openai_stream_event_by_event() {
        let stream = concat!(
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1300,\"completion_tokens\":7,\"total_tokens\":1307,\"prompt_tokens_details\":{\"cached_tokens\":1280}}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut m = Meter::default();
        let mut splitter = crate::llm::sse::Splitter::default();
        let events = splitter.push(&Bytes::from_static(stream.as_bytes()));
        assert_eq!(events.len(), 4);
        m.event(&events[0]);
        m.event(&events[1]);
        // A null usage does not count as a usage yet.
        assert_eq!(m.usage(), None);
        m.event(&events[2]);
        m.event(&events[3]);
        let expected = usage("gpt-4o-mini-2024-07-18", 1300, 7, 1280, 0);
        assert_eq!(m.usage(), Some(expected.clone()));
        assert_eq!(meter(stream.as_bytes()), Some(expected));
    }

    #[test]
    fn meter_reads_an_anthropic_stream_event_by_event() {
        let stream = concat!(
            "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":1500,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\r\n\r\n",
            "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\r\n\r\n",
            "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}\r\n\r\n",
            "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
        );
        assert_eq!(
            meter(stream.as_bytes()),
            Some(usage("claude-sonnet-4-5-20250929", 1512, 42, 0, 1500))
        );
    }

    #[test]
    fn meter_json_and_skipped_events() {
        let mut m = Meter::default();
        // An event naming neither usage nor model is not parsed, even when malformed.
        m.event(b"data: {not json\n\n");
        m.event(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert_eq!(m.usage(), None);
        m.json(
            br#"{"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#,
        );
        assert_eq!(m.usage(), Some(usage("text-embedding-3-small", 8, 0, 0, 0)));
        // Once the model is known, an event without usage is skipped.
        m.event(b"data: {\"model\":\"other\"}\n\n");
        assert_eq!(
            m.usage().map(|u| u.model),
            Some("text-embedding-3-small".into())
        );
        // A model seen before any usage is kept.
        let mut m = Meter::default();
        m.event(b"data: {\"model\":\"gpt-5\",\"choices\":[]}\n\n");
        m.event(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
        );
        assert_eq!(m.usage(), Some(usage("gpt-5", 1, 2, 0, 0)));
        assert!(contains(b"abcusage", b"usage"));
        assert!(!contains(b"usag", b"usage"));
    }
}
