//! Unit tests of the key pool: rotation, cooldowns, the all-cooling fallback, and
//! reloads that keep the cooldowns of keys that stay.

use super::*;
use http::StatusCode;

fn cooldowns() -> Cooldowns {
    Cooldowns {
        rate_limited: Duration::from_secs(60),
        unauthorized: Duration::from_secs(600),
        max: Duration::from_secs(120),
    }
}

fn pool(keys: &[&str]) -> KeyPool {
    let raw = keys.iter().map(|k| (*k).to_string()).collect();
    KeyPool::new("u", Provider::Openai, cooldowns(), "api_keys_env", raw).unwrap()
}

fn header(pool: &KeyPool) -> (String, usize) {
    let (value, used) = pool.select();
    (value.to_str().unwrap().to_string(), used)
}

#[test]
fn keys_rotate_round_robin() {
    let pool = pool(&["a", "b", "c"]);
    let seen: Vec<String> = (0..6).map(|_| header(&pool).0).collect();
    assert_eq!(
        seen,
        [
            "Bearer a", "Bearer b", "Bearer c", "Bearer a", "Bearer b", "Bearer c"
        ]
    );
}

#[test]
fn a_rate_limited_key_is_skipped_until_its_cooldown_ends() {
    let pool = pool(&["a", "b"]);
    let (_, used) = header(&pool);
    assert_eq!(
        pool.report(used, StatusCode::TOO_MANY_REQUESTS, None),
        Some(Duration::from_secs(60))
    );
    assert_eq!(pool.available(), 1);
    for _ in 0..5 {
        assert_eq!(header(&pool).0, "Bearer b");
    }
    // Other statuses change nothing.
    let (_, used) = header(&pool);
    assert_eq!(
        pool.report(used, StatusCode::INTERNAL_SERVER_ERROR, None),
        None
    );
    assert_eq!(pool.available(), 1);
}

#[test]
fn retry_after_is_honoured_up_to_the_cap_and_401_cools_longer() {
    let pool = pool(&["a", "b", "c"]);
    let (_, a) = header(&pool);
    let (_, b) = header(&pool);
    let (_, c) = header(&pool);
    assert_eq!(
        pool.report(
            a,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(5))
        ),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        pool.report(
            b,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(9999))
        ),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        pool.report(c, StatusCode::UNAUTHORIZED, None),
        Some(Duration::from_secs(600))
    );
    assert_eq!(pool.available(), 0);
    // All cooling: the one whose cooldown ends first, never none.
    for _ in 0..4 {
        assert_eq!(header(&pool).0, "Bearer a");
    }
}

#[tokio::test]
async fn a_cooled_key_returns_when_its_cooldown_ends() {
    let pool = pool(&["a", "b"]);
    let (_, used) = header(&pool);
    pool.report(
        used,
        StatusCode::TOO_MANY_REQUESTS,
        Some(Duration::from_millis(200)),
    );
    assert_eq!(header(&pool).0, "Bearer b");
    assert_eq!(header(&pool).0, "Bearer b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.available(), 2);
    let seen: Vec<String> = (0..2).map(|_| header(&pool).0).collect();
    assert!(seen.contains(&"Bearer a".to_string()), "{seen:?}");
}

#[test]
fn a_reload_keeps_the_cooldowns_of_keys_that_stay() {
    let pool = pool(&["a", "b"]);
    let (_, a) = header(&pool);
    let (_, b) = header(&pool);
    pool.report(a, StatusCode::TOO_MANY_REQUESTS, None);
    pool.replace("api_keys_file", vec!["c".into(), "a".into()])
        .unwrap();
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.available(), 1, "a is still cooling");
    for _ in 0..3 {
        assert_eq!(header(&pool).0, "Bearer c");
    }
    // A report tagged before the reload does not cool whichever key now has index 0.
    assert_eq!(pool.report(b, StatusCode::TOO_MANY_REQUESTS, None), None);
    assert_eq!(pool.available(), 1);
    // An empty replacement is refused and the keys stay.
    assert!(pool.replace("api_keys_file", Vec::new()).is_err());
    assert_eq!(pool.len(), 2);
}

#[test]
fn key_files_skip_comments_and_blank_lines() {
    let text = "# primary\nsk-1\n\n  sk-2  \n#sk-3\n";
    assert_eq!(parse_key_file(text), ["sk-1", "sk-2"]);
}

#[test]
fn fingerprints_are_short_and_do_not_contain_the_key() {
    let f = fingerprint("sk-secret-1234");
    assert_eq!(f.len(), 8);
    assert!(!f.contains("1234"));
    assert_ne!(f, fingerprint("sk-secret-1235"));
}

#[test]
fn anthropic_keys_are_sent_bare_and_invalid_keys_are_named_by_index() {
    let pool = KeyPool::new(
        "u",
        Provider::Anthropic,
        cooldowns(),
        "api_keys_env",
        vec!["k1".into()],
    )
    .unwrap();
    assert_eq!(header(&pool).0, "k1");
    let err = KeyPool::new(
        "u",
        Provider::Openai,
        cooldowns(),
        "api_keys_file",
        vec!["ok".into(), "bad\nkey".into()],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api_keys_file: key 1 contains invalid characters"
    );
}
