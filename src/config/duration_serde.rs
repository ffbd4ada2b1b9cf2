//! Human-readable durations such as `"1m 30s"` or `"250ms"` in both directions, for
//! `#[serde(with = "crate::config::duration_serde")]` on every duration key.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parses a duration string.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({e}); use forms like \"30s\", \"250ms\" or \"2m\""
        ))
    })
}

/// Formats a duration string.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*value).to_string())
}
