//! Admin API authentication: one bearer token, compared in constant time.
//!
//! Accepted: exactly one `Authorization: Bearer <token>` header (scheme spelled
//! `Bearer`). Refused with 401: no header, two headers, another scheme or spelling, a
//! wrong token, and any token passed in the query string (which would end up in logs).

use http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The expected token, kept only as a SHA-256 digest so comparisons do not leak length.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Wraps a token value.
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Sha256::digest(token.trim().as_bytes()).into())
    }

    /// Loads the token from `file` or `MICROGATEWAY_ADMIN_TOKEN`; `Ok(None)` when neither is set.
    pub fn load(file: Option<&std::path::Path>) -> Result<Option<AdminToken>, String> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("admin.token_file {}: {e}", path.display()))?;
            if text.trim().is_empty() {
                return Err(format!("admin.token_file {} is empty", path.display()));
            }
            return Ok(Some(AdminToken::new(&text)));
        }
        Ok(std::env::var("MICROGATEWAY_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| AdminToken::new(&t)))
    }

    /// Checks one request; the error is the reason given in the 401 body.
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), &'static str> {
        let in_query = query.is_some_and(|q| {
            q.split('&').any(|pair| {
                let key = pair
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                matches!(
                    key.as_str(),
                    "token" | "access_token" | "api_key" | "apikey"
                )
            })
        });
        if in_query {
            return Err("tokens in the query string are not accepted; use Authorization: Bearer");
        }
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err("exactly one Authorization: Bearer header is required");
        };
        let Some(presented) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return Err("the Authorization scheme must be Bearer");
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        if bool::from(digest.ct_eq(&self.0)) {
            Ok(())
        } else {
            Err("invalid token")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn accepts_only_one_exact_bearer_header() {
        let t = AdminToken::new("s3cret-token");
        assert!(t.check(&headers(&["Bearer s3cret-token"]), None).is_ok());
        assert!(t.check(&headers(&[]), None).is_err());
        assert!(t.check(&headers(&["Bearer wrong"]), None).is_err());
        assert!(t.check(&headers(&["bearer s3cret-token"]), None).is_err());
        assert!(
            t.check(
                &headers(&["Bearer s3cret-token", "Bearer s3cret-token"]),
                None
            )
            .is_err()
        );
        assert!(
            t.check(
                &headers(&["Bearer s3cret-token"]),
                Some("a=1&token=s3cret-token")
            )
            .is_err()
        );
    }
}
