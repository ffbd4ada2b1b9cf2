//! Admin API authentication: one bearer token, compared in constant time.
//!
//! Accepted: exactly one `Authorization: Bearer <token>` header (scheme spelled
//! `Bearer`). Refused with 401: no header, two headers, another scheme or spelling, a
//! wrong token, and any token passed in the query string (which would end up in logs).
//!
//! There is always a token: without `admin.token_file` or `MICROGATEWAY_ADMIN_TOKEN`
//! one is generated into `data_dir/admin-token` (mode 0600) on first start.

use crate::config::AdminConfig;
use http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
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

    /// Finds the token: `admin.token_file`, then `MICROGATEWAY_ADMIN_TOKEN` (read by
    /// `Config::load`), then `data_dir/admin-token`, generated on first start. A
    /// generated token serves loopback listeners only: anywhere else the operator must
    /// choose the token.
    pub fn resolve(admin: &AdminConfig) -> Result<(AdminToken, TokenSource), String> {
        if let Some(path) = &admin.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("admin.token_file {}: {e}", path.display()))?;
            if text.trim().is_empty() {
                return Err(format!("admin.token_file {} is empty", path.display()));
            }
            return Ok((AdminToken::new(&text), TokenSource::File(path.clone())));
        }
        if let Some(secret) = &admin.token_env {
            return Ok((AdminToken::new(&secret.0), TokenSource::Environment));
        }
        if !admin.listen.ip().is_loopback() {
            return Err(format!(
                "admin.listen {} is not a loopback address: set admin.token_file or MICROGATEWAY_ADMIN_TOKEN (a generated token serves loopback only)",
                admin.listen
            ));
        }
        let path = admin.data_dir.join(GENERATED_FILE);
        let (text, created) = read_or_generate(&path).map_err(|e| {
            format!(
                "cannot read or create the admin token {} ({e}); set admin.token_file or MICROGATEWAY_ADMIN_TOKEN, or make admin.data_dir writable",
                path.display()
            )
        })?;
        Ok((
            AdminToken::new(&text),
            TokenSource::Generated { path, created },
        ))
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

/// Name of the generated token file inside `admin.data_dir`.
pub const GENERATED_FILE: &str = "admin-token";

/// Where the admin token came from (logged at start, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `admin.token_file`.
    File(PathBuf),
    /// `MICROGATEWAY_ADMIN_TOKEN`.
    Environment,
    /// `data_dir/admin-token`; `created` on this start.
    Generated {
        /// The token file.
        path: PathBuf,
        /// Written by this start (false: kept from an earlier one).
        created: bool,
    },
}

/// Reads `path`, or writes a new random token there (mode 0600) when it is missing.
/// The file appears whole or not at all: it is written under a temporary name and
/// hard-linked into place, so two gateways starting at once agree on one token.
fn read_or_generate(path: &Path) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "admin token file is readable by other users; chmod 600 it");
            }
            return Ok((text, false));
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file is empty",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{GENERATED_FILE}.{}", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            std::fs::File::open(dir)?.sync_all()?;
            Ok((token, true))
        }
        // Another gateway won the race: use its token.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((std::fs::read_to_string(path)?, false))
        }
        Err(e) => Err(e),
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

#[cfg(test)]
mod generated {
    use super::*;

    #[test]
    fn generated_token_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(GENERATED_FILE);
        let (first, created) = read_or_generate(&path).unwrap();
        assert!(created);
        assert_eq!(first.trim().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, created) = read_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(first.trim(), second.trim());
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");
    }
}
