//! The parts of a provider's JSON object that carry usage, read without building a
//! `serde_json::Value`.
//!
//! Only `model` and `usage` are read, at the top and inside `response` (OpenAI
//! responses events) and `message` (Anthropic's `message_start`); every other field is
//! skipped unparsed. Parsing a whole answer into a `Value` cost about 20,000
//! instructions per exchange (callgrind), most of them the choices. Every part is read
//! leniently: a field of another shape (a string `usage`, a float count) reads as
//! absent, as it did through a `Value`, and never fails the object.

use crate::llm::lenient::{Names, Shape, next, next_key};
use serde::de::{IgnoredAny, MapAccess};

/// What one provider object says about usage.
#[derive(Debug, Default)]
pub(super) struct Parts {
    pub(super) top: Level,
    pub(super) response: Level,
    pub(super) message: Level,
}

/// `model` and `usage` of one object.
#[derive(Debug, Default)]
pub(super) struct Level {
    /// A string `model`.
    pub(super) model: Option<String>,
    /// A `usage` object.
    pub(super) usage: Option<Usage>,
}

/// The counts of a `usage` object that the gateway reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Usage {
    pub(super) prompt_tokens: Option<u64>,
    pub(super) completion_tokens: Option<u64>,
    pub(super) input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens` (OpenAI chat).
    pub(super) prompt_cached: Option<u64>,
    /// `input_tokens_details.cached_tokens` (OpenAI responses).
    pub(super) input_cached: Option<u64>,
}

/// The field names the parts know, recognised without allocating the key.
enum Field {
    Model,
    Usage,
    Response,
    Message,
    PromptTokens,
    CompletionTokens,
    InputTokens,
    OutputTokens,
    CacheRead,
    CacheCreation,
    PromptDetails,
    InputDetails,
    CachedTokens,
    Other,
}

impl Names for Field {
    fn named(name: &str) -> Field {
        match name {
            "model" => Field::Model,
            "usage" => Field::Usage,
            "response" => Field::Response,
            "message" => Field::Message,
            "prompt_tokens" => Field::PromptTokens,
            "completion_tokens" => Field::CompletionTokens,
            "input_tokens" => Field::InputTokens,
            "output_tokens" => Field::OutputTokens,
            "cache_read_input_tokens" => Field::CacheRead,
            "cache_creation_input_tokens" => Field::CacheCreation,
            "prompt_tokens_details" => Field::PromptDetails,
            "input_tokens_details" => Field::InputDetails,
            "cached_tokens" => Field::CachedTokens,
            _ => Field::Other,
        }
    }
}

/// `{"cached_tokens": N}`.
struct Cached(Option<u64>);

impl Shape for Cached {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Cached>, A::Error> {
        let mut cached = None;
        while let Some(field) = next_key::<Field, A>(&mut map)? {
            match field {
                Field::CachedTokens => cached = next::<u64, A>(&mut map)?,
                _ => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(Some(Cached(cached)))
    }
}

impl Shape for Usage {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Usage>, A::Error> {
        let mut u = Usage::default();
        while let Some(field) = next_key::<Field, A>(&mut map)? {
            let slot = match field {
                Field::PromptTokens => &mut u.prompt_tokens,
                Field::CompletionTokens => &mut u.completion_tokens,
                Field::InputTokens => &mut u.input_tokens,
                Field::OutputTokens => &mut u.output_tokens,
                Field::CacheRead => &mut u.cache_read_input_tokens,
                Field::CacheCreation => &mut u.cache_creation_input_tokens,
                Field::PromptDetails => {
                    u.prompt_cached = next::<Cached, A>(&mut map)?.and_then(|c| c.0);
                    continue;
                }
                Field::InputDetails => {
                    u.input_cached = next::<Cached, A>(&mut map)?.and_then(|c| c.0);
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = next::<u64, A>(&mut map)?;
        }
        Ok(Some(u))
    }
}

impl Shape for Level {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Level>, A::Error> {
        let mut level = Level::default();
        while let Some(field) = next_key::<Field, A>(&mut map)? {
            level.fill(field, &mut map)?;
        }
        Ok(Some(level))
    }
}

impl Level {
    /// Reads the value of `field` when it is one of this level's.
    fn fill<'de, A: MapAccess<'de>>(&mut self, field: Field, map: &mut A) -> Result<(), A::Error> {
        match field {
            Field::Model => self.model = next::<String, A>(map)?,
            Field::Usage => self.usage = next::<Usage, A>(map)?,
            _ => drop(map.next_value::<IgnoredAny>()?),
        }
        Ok(())
    }
}

impl Shape for Parts {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Parts>, A::Error> {
        let mut parts = Parts::default();
        while let Some(field) = next_key::<Field, A>(&mut map)? {
            match field {
                Field::Response => parts.response = next(&mut map)?.unwrap_or_default(),
                Field::Message => parts.message = next(&mut map)?.unwrap_or_default(),
                other => parts.top.fill(other, &mut map)?,
            }
        }
        Ok(Some(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Parts {
        crate::llm::lenient::from_slice(json.as_bytes()).unwrap()
    }

    #[test]
    fn fields_of_another_shape_read_as_absent() {
        let p = read(
            r#"{"response":"text","message":[1,2],"model":7,"usage":{"prompt_tokens":1.5,"completion_tokens":-2,"output_tokens":"3","input_tokens":4}}"#,
        );
        assert_eq!(p.top.model, None);
        let u = p.top.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.output_tokens),
            (None, None, None)
        );
        assert_eq!(u.input_tokens, Some(4));
        assert!(p.response.model.is_none() && p.message.usage.is_none());
        assert!(read(r#"{"usage":3}"#).top.usage.is_none());
        assert!(read(r#"{"usage":null}"#).top.usage.is_none());
        for other in ["[1,{\"usage\":{}}]", "\"usage\"", "null", "true", "-1.5"] {
            let p = read(other);
            assert!(p.top.usage.is_none(), "{other}");
        }
    }

    #[test]
    fn nested_levels_details_escaped_keys_and_the_last_duplicate() {
        let p = read(
            r#"{"mod\u0065l":"a","choices":[{"message":{"usage":{}}}],"message":{"model":"b","response":{"usage":{}},"usage":{"output_tokens":1}},"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":7,"audio_tokens":0}},"usage":{"prompt_tokens":2,"input_tokens_details":{"cached_tokens":"x"}}}"#,
        );
        assert_eq!(p.top.model.as_deref(), Some("a"));
        let top = p.top.usage.unwrap();
        assert_eq!(
            (top.prompt_tokens, top.prompt_cached, top.input_cached),
            (Some(2), None, None)
        );
        assert_eq!(p.message.model.as_deref(), Some("b"));
        assert_eq!(p.message.usage.unwrap().output_tokens, Some(1));
        // Only one level down is read: `message.response` is skipped.
        assert!(p.response.usage.is_none());
        assert!(crate::llm::lenient::from_slice::<Parts>(b"{\"model\":").is_err());
    }
}
