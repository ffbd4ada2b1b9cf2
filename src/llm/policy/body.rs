//! What `llm_policy` reads of a request body, in one pass and without building a
//! `serde_json::Value`: the model, whether it streams, whether it has `messages` and
//! `stream_options`, and the characters of its prompt-bearing fields.
//!
//! Every field is read leniently: a field of another shape reads as absent (a
//! non-string `model` is the empty model), as it did through a `Value`. Only a body
//! that is not JSON at all is an error.

use crate::llm::lenient::{self, Names, Shape, next, next_key};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The fields of a chat, completion or embedding request that the policy uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Request {
    /// A string `model`, else empty.
    pub(super) model: String,
    /// `stream` is `true`.
    pub(super) stream: bool,
    /// The body has `messages` (of any shape).
    pub(super) messages: bool,
    /// The body has `stream_options` (of any shape).
    pub(super) stream_options: bool,
    /// Characters of every string in `messages`, `input`, `prompt` and `system`.
    pub(super) prompt_chars: u64,
}

impl Request {
    /// Reads `body`; an error when it is not JSON.
    pub(super) fn read(body: &[u8]) -> Result<Request, serde_json::Error> {
        lenient::from_slice::<Request>(body)
    }

    /// The prompt's size in tokens, estimated as its characters divided by four.
    pub(super) fn estimated_tokens(&self) -> u64 {
        self.prompt_chars.div_ceil(4)
    }
}

/// `body` (a JSON object with `messages`) with `"stream_options":{"include_usage":true}`
/// added as its first member; the client's bytes are otherwise kept as they are.
pub(super) fn with_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let open = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body[open] != b'{' {
        return None;
    }
    const MEMBER: &[u8] = br#""stream_options":{"include_usage":true},"#;
    let mut out = Vec::with_capacity(body.len() + MEMBER.len());
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(MEMBER);
    out.extend_from_slice(&body[open + 1..]);
    Some(out)
}

/// The top-level names the policy reads.
enum Field {
    Model,
    Stream,
    Messages,
    StreamOptions,
    /// `input`, `prompt` or `system`: an index into the prompt fields after `messages`.
    Prompt(usize),
    Other,
}

impl Names for Field {
    fn named(name: &str) -> Field {
        match name {
            "model" => Field::Model,
            "stream" => Field::Stream,
            "messages" => Field::Messages,
            "stream_options" => Field::StreamOptions,
            "input" => Field::Prompt(1),
            "prompt" => Field::Prompt(2),
            "system" => Field::Prompt(3),
            _ => Field::Other,
        }
    }
}

/// The characters of every string in a value (object keys not counted), without
/// keeping any of them.
struct Chars(u64);

impl<'de> Deserialize<'de> for Chars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Chars, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = Chars;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Chars, E> {
                Ok(Chars(v.chars().count() as u64))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Chars, E> {
                Ok(Chars(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Chars, E> {
                Ok(Chars(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Chars, E> {
                Ok(Chars(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Chars, E> {
                Ok(Chars(0))
            }
            fn visit_unit<E>(self) -> Result<Chars, E> {
                Ok(Chars(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Chars, A::Error> {
                let mut chars = 0u64;
                while let Some(item) = seq.next_element::<Chars>()? {
                    chars = chars.saturating_add(item.0);
                }
                Ok(Chars(chars))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Chars, A::Error> {
                let mut chars = 0u64;
                while map.next_key::<IgnoredAny>()?.is_some() {
                    chars = chars.saturating_add(map.next_value::<Chars>()?.0);
                }
                Ok(Chars(chars))
            }
        }
        d.deserialize_any(Count)
    }
}

impl Shape for Request {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Request>, A::Error> {
        let mut r = Request::default();
        // Last wins for a repeated name, as in a `Value`: `messages`, `input`, `prompt`,
        // `system`.
        let mut prompt = [0u64; 4];
        while let Some(field) = next_key::<Field, A>(&mut map)? {
            match field {
                Field::Model => r.model = next::<String, A>(&mut map)?.unwrap_or_default(),
                Field::Stream => r.stream = next::<bool, A>(&mut map)? == Some(true),
                Field::Messages => {
                    r.messages = true;
                    prompt[0] = map.next_value::<Chars>()?.0;
                }
                Field::StreamOptions => {
                    r.stream_options = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Prompt(i) => prompt[i] = map.next_value::<Chars>()?.0,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        r.prompt_chars = prompt.iter().fold(0, |a, b| a.saturating_add(*b));
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_policy_needs() {
        let r = Request::read(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"abcdefgh"}],"system":"xy","n":{"input":"zzzz"}}"#,
        )
        .unwrap();
        assert_eq!(r.model, "m");
        assert!(r.stream && r.messages && !r.stream_options);
        // "user" + "abcdefgh" + "xy"; strings under other fields are not prompt.
        assert_eq!(r.prompt_chars, 14);
        assert_eq!(r.estimated_tokens(), 4);
        let r = Request::read(br#"{"model":5,"stream":"yes","stream_options":null}"#).unwrap();
        assert_eq!(
            (r.model.as_str(), r.stream, r.stream_options),
            ("", false, true)
        );
        assert_eq!(Request::read(b"[1,2]").unwrap(), Request::default());
        assert!(Request::read(b"{\"model\":").is_err());
    }

    #[test]
    fn stream_usage_is_added_as_the_first_member() {
        let body = with_stream_usage(b" {\"stream\":true,\"messages\":[]}").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream"], true);
        assert_eq!(with_stream_usage(b"[]"), None);
    }
}
