//! OpenAI chat/completions request body -> Anthropic /v1/messages request body.

use super::{TranslateError, invalid};
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// Fields that are accepted and either translated below or harmless to drop.
const HANDLED: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "n",
    "store",
    "seed",
];

/// OpenAI chat request body (parsed) -> Anthropic /v1/messages body bytes.
pub fn request(chat: &Value, default_max_tokens: u64) -> Result<Bytes, TranslateError> {
    let chat = chat.as_object().ok_or_else(|| TranslateError::Invalid {
        param: None,
        message: "the request body must be a JSON object".into(),
    })?;
    check_unsupported(chat)?;
    let mut out = Map::new();
    if let Some(model) = chat.get("model") {
        out.insert("model".into(), model.clone());
    }
    let max = match chat
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| chat.get("max_tokens").filter(|v| !v.is_null()))
    {
        None => default_max_tokens,
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid("max_tokens", "max_tokens must be a positive integer"))?,
    };
    out.insert("max_tokens".into(), json!(max));
    let (system, messages) = messages(chat.get("messages"))?;
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    for key in ["temperature", "top_p", "stream"] {
        if let Some(v) = chat.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    match chat.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        Some(_) => {
            return Err(invalid(
                "stop",
                "stop must be a string or an array of strings",
            ));
        }
    }
    if let Some(tools) = chat.get("tools").filter(|v| !v.is_null()) {
        out.insert("tools".into(), self::tools(tools)?);
    }
    let parallel = chat.get("parallel_tool_calls").and_then(Value::as_bool);
    let mut choice = match chat.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(c) => Some(tool_choice(c)?),
    };
    if parallel == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    match chat.get("user") {
        None | Some(Value::Null) => {}
        Some(Value::String(u)) => {
            out.insert("metadata".into(), json!({ "user_id": u }));
        }
        Some(_) => return Err(invalid("user", "user must be a string")),
    }
    Ok(Bytes::from(Value::Object(out).to_string()))
}

/// Rejects fields without an Anthropic equivalent, unless they have their neutral value.
fn check_unsupported(chat: &Map<String, Value>) -> Result<(), TranslateError> {
    for (key, value) in chat {
        let neutral = match key.as_str() {
            "n" => value.is_null() || value.as_u64() == Some(1),
            "frequency_penalty" | "presence_penalty" => {
                value.is_null() || value.as_f64() == Some(0.0)
            }
            "logprobs" => value.is_null() || value == &json!(false),
            "response_format" => value.is_null() || value == &json!({"type": "text"}),
            k => HANDLED.contains(&k),
        };
        if !neutral {
            return Err(invalid(
                key.clone(),
                format!("'{key}' is not supported when this model is served by Anthropic"),
            ));
        }
    }
    Ok(())
}

/// The system text and the merged Anthropic messages of the OpenAI `messages`.
fn messages(messages: Option<&Value>) -> Result<(Vec<String>, Vec<Value>), TranslateError> {
    let list = messages
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("messages", "messages must be a non-empty array"))?;
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let p = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                let blocks = content(m.get("content"), &p, false)?;
                let text: Vec<&str> = blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                system.push(text.join("\n"));
                continue;
            }
            "user" => ("user", content(m.get("content"), &p, true)?),
            "assistant" => ("assistant", assistant(m, &p)?),
            "tool" => ("user", vec![tool_result(m, &p)?]),
            other => {
                return Err(invalid(
                    format!("{p}.role"),
                    format!("unsupported message role '{other}'"),
                ));
            }
        };
        match out.last_mut() {
            Some((last, prev)) if *last == role => prev.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    let messages = out
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    Ok((system, messages))
}

/// Content blocks of a string or an array of parts; images only when `images` is set.
fn content(c: Option<&Value>, p: &str, images: bool) -> Result<Vec<Value>, TranslateError> {
    match c {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{p}.content[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text" | "refusal") => {
                        let key = if part.get("text").is_some() {
                            "text"
                        } else {
                            "refusal"
                        };
                        let text = part.get(key).and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            blocks.push(json!({"type": "text", "text": text}));
                        }
                    }
                    Some("image_url") if images => blocks.push(image(part, &pp)?),
                    other => {
                        return Err(invalid(
                            format!("{pp}.type"),
                            format!("unsupported content part type {other:?}"),
                        ));
                    }
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(invalid(
            format!("{p}.content"),
            "content must be a string or an array",
        )),
    }
}

/// An Anthropic image block for an OpenAI `image_url` part (remote or data: URL).
fn image(part: &Value, p: &str) -> Result<Value, TranslateError> {
    let url = part
        .get("image_url")
        .and_then(|u| u.get("url").or(Some(u)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest
            .split_once(";base64,")
            .filter(|(m, _)| !m.is_empty())
            .ok_or_else(|| invalid(format!("{p}.image_url"), "data: URLs must be base64"))?;
        return Ok(json!({"type": "image", "source": {
            "type": "base64", "media_type": media_type, "data": data,
        }}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(invalid(
        format!("{p}.image_url"),
        "image_url must be an http(s) or data: URL",
    ))
}

/// The text and `tool_use` blocks of an assistant message.
fn assistant(m: &Value, p: &str) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = content(m.get("content"), p, false)?;
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(invalid(
                format!("{p}.tool_calls"),
                "tool_calls must be an array",
            ));
        }
    };
    for (j, call) in calls.iter().enumerate() {
        let pp = format!("{p}.tool_calls[{j}]");
        let f = call.get("function");
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let id = call.get("id").and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(invalid(pp, "a tool call needs an id and a function name"));
        };
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let input = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str::<Value>(args)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    invalid(
                        format!("{pp}.function.arguments"),
                        "arguments must be a JSON object",
                    )
                })?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

/// The `tool_result` block of a `role: "tool"` message.
fn tool_result(m: &Value, p: &str) -> Result<Value, TranslateError> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                format!("{p}.tool_call_id"),
                "tool messages need tool_call_id",
            )
        })?;
    let content = match m.get("content") {
        Some(Value::String(s)) => json!(s),
        c => Value::Array(content(c, p, false)?),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

/// Anthropic tools for OpenAI function tools.
fn tools(tools: &Value) -> Result<Value, TranslateError> {
    let list = tools
        .as_array()
        .ok_or_else(|| invalid("tools", "tools must be an array"))?;
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let f = t
            .get("function")
            .filter(|_| t.get("type") == Some(&json!("function")));
        let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some(f), Some(name)) = (f, name) else {
            return Err(invalid(
                format!("tools[{i}]"),
                "only named function tools are supported",
            ));
        };
        let mut tool = json!({
            "name": name,
            "input_schema": f.get("parameters").filter(|v| !v.is_null()).cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            tool["description"] = json!(d);
        }
        out.push(tool);
    }
    Ok(Value::Array(out))
}

/// The Anthropic `tool_choice` for an OpenAI one.
fn tool_choice(c: &Value) -> Result<Value, TranslateError> {
    let name = c
        .get("function")
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    match (c.as_str(), name) {
        (Some("auto"), _) => Ok(json!({"type": "auto"})),
        (Some("none"), _) => Ok(json!({"type": "none"})),
        (Some("required"), _) => Ok(json!({"type": "any"})),
        (None, Some(name)) => Ok(json!({"type": "tool", "name": name})),
        _ => Err(invalid("tool_choice", "unsupported tool_choice")),
    }
}
