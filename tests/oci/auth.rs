//! Registry credentials as the Tyk docs describe them, against `docker-registry` with
//! htpasswd auth: the entitlement's default username, missing versus rejected
//! credentials, and which credential source an error names (never the secret).
