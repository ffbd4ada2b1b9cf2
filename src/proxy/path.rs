//! The path check every request passes before any plugin or upstream sees it: dot
//! segments (also encoded) and encoded separators a route does not allow are refused.

use crate::error::GatewayError;

/// Rejects paths that could match one route here and reach another resource after the
/// upstream decodes and normalises them: a raw backslash; a `.` or `..` segment once
/// `%2e`, `%2f` and `%5c` (any case) are decoded and both `/` and `\` separate
/// segments (`/n/..%2fb` becomes `/n/../b`, which a `strip_prefix` route would forward
/// as `/../b`); and, unless the route sets `allow_encoded_slashes`, an encoded slash or
/// backslash at all.
///
/// Decoding is one pass over exactly these three triplets: `%252e` is `%25` followed by
/// `2e`, reaches the upstream as the literal text `%2e` after its own single decode,
/// and is harmless, so it is not decoded again here.
pub(super) fn check_path(path: &str, allow_encoded_slashes: bool) -> Result<(), GatewayError> {
    let refuse = |what: String| Err(GatewayError::BadRequest(format!("path contains {what}")));
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\') {
        return refuse("a raw backslash".into());
    }
    // The common path has no escapes at all: its segments are its own.
    let mut decoded = std::borrow::Cow::Borrowed(bytes);
    let mut encoded_separator = None;
    if bytes.contains(&b'%') {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let triplet = bytes.get(i..i + 3).unwrap_or_default();
            let escape = match triplet {
                [b'%', b'2', x] if x.eq_ignore_ascii_case(&b'e') => Some((b'.', None)),
                [b'%', b'2', x] if x.eq_ignore_ascii_case(&b'f') => Some((b'/', Some("slash"))),
                [b'%', b'5', x] if x.eq_ignore_ascii_case(&b'c') => {
                    Some((b'\\', Some("backslash")))
                }
                _ => None,
            };
            match escape {
                Some((byte, separator)) => {
                    if let Some(kind) = separator
                        && encoded_separator.is_none()
                    {
                        encoded_separator = Some((kind, String::from_utf8_lossy(triplet)));
                    }
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        decoded = std::borrow::Cow::Owned(out);
    }
    let dot = decoded
        .split(|b| *b == b'/' || *b == b'\\')
        .find_map(dot_segment);
    if let Some(dot) = dot {
        return refuse(format!(
            "the dot segment {dot:?} (after decoding %2e, %2f and %5c)"
        ));
    }
    match encoded_separator {
        Some((kind, triplet)) if !allow_encoded_slashes => refuse(format!(
            "an encoded {kind} ({triplet}); the route does not set allow_encoded_slashes"
        )),
        _ => Ok(()),
    }
}

/// `.` or `..` when `segment` is one, also with a `;parameters` suffix (`..;x`), which
/// servlet containers strip before they normalise.
fn dot_segment(segment: &[u8]) -> Option<&'static str> {
    let name = segment.split(|b| *b == b';').next().unwrap_or_default();
    match name {
        b"." => Some("."),
        b".." => Some(".."),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::check_path;

    fn message(path: &str, allow: bool) -> Option<String> {
        check_path(path, allow).err().map(|e| e.to_string())
    }

    #[test]
    fn plain_paths_pass() {
        for ok in [
            "/",
            "/a/b",
            "/a/..b",
            "/a/b..",
            "/a/...",
            "/.well-known/x",
            "/a/.b/c",
            "/a%20b/c%41",
            "/a/%2e%2e%2e",
            "/a/%2ex",
            "/a;b/c",
            "/v1/chat/completions",
        ] {
            assert_eq!(message(ok, false), None, "{ok}");
            assert_eq!(message(ok, true), None, "{ok}");
        }
    }

    #[test]
    fn dot_segments_are_refused_in_every_encoding() {
        for bad in [
            "/a/../b",
            "/..",
            "/./x",
            "/a/.",
            "/a/%2E%2e/b",
            "/a/.%2e",
            "/a/%2e.",
            "/a/%2e",
            "/n/..%2ftenant-b/data",
            "/n/..%2Ftenant-b/data",
            "/n/%2e%2e%2ftenant-b",
            "/n/%2E%2E%2Ftenant-b",
            "/n/..%5ctenant-b",
            "/n/..%5Ctenant-b",
            "/n/%2e%2e%5c%2e%2e%5cetc",
            "/old/..%2fsecret",
            "/n/a%2f..%2fb",
            "/n/a%2f.",
            "/n/..;/tenant-b",
            "/n/.;x/y",
        ] {
            for allow in [false, true] {
                let msg = message(bad, allow).unwrap_or_else(|| panic!("{bad} passed"));
                assert!(msg.contains("dot segment"), "{bad}: {msg}");
            }
        }
    }

    #[test]
    fn encoded_separators_need_the_route_flag() {
        for (path, what) in [
            ("/n/a%2fb", "encoded slash (%2f)"),
            ("/n/a%2Fb", "encoded slash (%2F)"),
            ("/n/a%5cb", "encoded backslash (%5c)"),
            ("/n/a%5Cb", "encoded backslash (%5C)"),
            ("/n/%2F", "encoded slash (%2F)"),
        ] {
            let msg = message(path, false).unwrap_or_else(|| panic!("{path} passed"));
            assert!(msg.contains(what), "{path}: {msg}");
            assert!(msg.contains("allow_encoded_slashes"), "{path}: {msg}");
            assert_eq!(message(path, true), None, "{path} with the flag");
        }
    }

    #[test]
    fn raw_backslashes_are_always_refused() {
        for bad in ["/n/a\\b", "/n/..\\b", "\\", "/n/a%2fb\\c"] {
            for allow in [false, true] {
                let msg = message(bad, allow).unwrap_or_else(|| panic!("{bad} passed"));
                assert!(msg.contains("backslash"), "{bad}: {msg}");
            }
        }
    }

    #[test]
    fn double_encoding_is_decoded_once() {
        // `%252e` is a literal `%2e` for the upstream, never a dot.
        for ok in ["/n/%252e%252e/b", "/n/%252e%252e%252fb", "/n/%255c"] {
            assert_eq!(message(ok, false), None, "{ok}");
        }
    }
}
