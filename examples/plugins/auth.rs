//! Example plugin: API-key and JWT (HS256) authentication.
//!
//! Accepts `x-api-key: KEY` or `Authorization: Bearer KEY` for configured keys, and
//! `Authorization: Bearer <JWT>` signed with HS256 by `jwt_secret` (checks `exp` and,
//! when configured, `iss`). Identity is the key's name or the token's `sub`; the app id
//! is the token's `app` claim. Unknown credentials get no identity (the gateway answers
//! 401); an expired token gets a 401 from the plugin itself.
//!
//! Config: `{ api_keys = { "KEY" = "identity" }, jwt_secret = "...", jwt_issuer = "..." }`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use hmac::{Hmac, Mac};
use microgateway::sdk::{self, Handler, pb};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::RwLock;
use tonic::Status;

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    api_keys: BTreeMap<String, String>,
    #[serde(default)]
    jwt_secret: Option<String>,
    #[serde(default)]
    jwt_issuer: Option<String>,
}

#[derive(Default)]
struct Auth(RwLock<Settings>);

enum Jwt {
    Valid {
        sub: String,
        app: String,
        claims: Vec<(String, String)>,
    },
    Expired,
    Invalid,
}

fn verify(token: &str, secret: &str, issuer: Option<&str>) -> Jwt {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Jwt::Invalid;
    };
    let Ok(header) = b64
        .decode(h)
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b))
    else {
        return Jwt::Invalid;
    };
    if header.ok().and_then(|v| v.get("alg").cloned()) != Some("HS256".into()) {
        return Jwt::Invalid;
    }
    let Ok(sig) = b64.decode(s) else {
        return Jwt::Invalid;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Jwt::Invalid;
    };
    mac.update(format!("{h}.{p}").as_bytes());
    if mac.verify_slice(&sig).is_err() {
        return Jwt::Invalid;
    }
    let Ok(Ok(claims)) = b64
        .decode(p)
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b))
    else {
        return Jwt::Invalid;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if claims
        .get("exp")
        .and_then(|e| e.as_u64())
        .is_some_and(|exp| exp <= now)
    {
        return Jwt::Expired;
    }
    if let Some(iss) = issuer
        && claims.get("iss").and_then(|v| v.as_str()) != Some(iss)
    {
        return Jwt::Invalid;
    }
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let extra = claims
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Jwt::Valid {
        sub: text("sub"),
        app: text("app"),
        claims: extra,
    }
}

impl Handler for Auth {
    fn manifest(&self) -> pb::Manifest {
        sdk::manifest("auth", &[pb::Hook::Auth])
    }

    async fn initialize(&self, config: serde_json::Value) -> Result<(), String> {
        let settings: Settings = if config.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(config).map_err(|e| e.to_string())?
        };
        if settings.api_keys.is_empty() && settings.jwt_secret.is_none() {
            return Err("set api_keys and/or jwt_secret".into());
        }
        *self.0.write().unwrap() = settings;
        Ok(())
    }

    async fn auth(&self, req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        let settings = self.0.read().unwrap();
        let bearer = sdk::request_header(&req, "authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let key = sdk::request_header(&req, "x-api-key").or(bearer);
        if let Some(identity) = key.and_then(|k| settings.api_keys.get(k)) {
            return Ok(sdk::authenticated(identity, "api-key", Vec::new()));
        }
        if let (Some(token), Some(secret)) = (bearer, settings.jwt_secret.as_deref()) {
            match verify(token, secret, settings.jwt_issuer.as_deref()) {
                Jwt::Valid { sub, app, claims } => {
                    return Ok(sdk::authenticated(&sub, &app, claims));
                }
                Jwt::Expired => {
                    return Ok(sdk::respond_error(
                        401,
                        "token_expired",
                        "the bearer token has expired",
                    ));
                }
                Jwt::Invalid => {}
            }
        }
        Ok(sdk::pass())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = sdk::serve(Auth::default()).await {
        eprintln!("auth: {e}");
        std::process::exit(1);
    }
}
