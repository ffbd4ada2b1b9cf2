//! Failover to fallback groups, their validation, and `x-microgateway-upstream` naming
//! the target that answered.

use crate::common::faulty::{Fault, Faulty, Refused};
use crate::common::{GatewayConfig, get};
use crate::retry::{drive, failures, metric};
use hyper::StatusCode;

#[tokio::test]
async fn the_fallback_group_answers_when_the_primary_is_down() {
    let backup = Faulty::start("backup", Fault::Healthy).await;
    let refused = [Refused::new(), Refused::new()];
    let dead = refused.each_ref().map(Refused::url);
    let gw = GatewayConfig::new()
        .upstream_urls("primary", &dead, "")
        .upstream_urls("backup", &[backup.url()], "")
        .route("r", "primary", "fallback = [\"backup\"]")
        .start()
        .await;
    let replies = drive(gw.proxy_addr, "GET", "/x", 50, 4).await;
    assert_eq!(failures(&replies), Vec::<String>::new());
    for r in &replies {
        assert_eq!(
            r.header("x-microgateway-upstream"),
            Some(format!("backup/{}", backup.addr).as_str())
        );
    }
    let primary = metric(
        gw.admin_addr,
        "microgateway_upstream_attempts_total",
        &["upstream=\"primary\"", "outcome=\"connect\""],
    )
    .await;
    assert_eq!(
        primary, 100.0,
        "both primary targets were tried for every request"
    );
}

#[test]
fn fallbacks_are_validated_by_key() {
    let base = "[[upstreams]]\nname = \"a\"\ntargets = [\"http://127.0.0.1:9\"]\n\
                [[upstreams]]\nname = \"b\"\ntargets = [\"http://127.0.0.1:9\"]\n\
                llm = { provider = \"anthropic\", api_key_env = \"X\" }\n\
                [[upstreams]]\nname = \"c\"\ntargets = [\"http://127.0.0.1:9\"]\n\
                llm = { provider = \"openai\", api_key_env = \"X\" }\n";
    let refuse = |route: &str| {
        let toml = format!("{base}[[routes]]\nname = \"r\"\n{route}\n");
        match microgateway::Config::from_toml(&toml) {
            Ok(_) => panic!("accepted: {route}"),
            Err(e) => e.to_string(),
        }
    };
    let e = refuse("upstream = \"a\"\nfallback = [\"nope\"]");
    assert!(
        e.contains("routes[0].fallback[0]") && e.contains("unknown upstream"),
        "{e}"
    );
    let e = refuse("upstream = \"a\"\nfallback = [\"a\"]");
    assert!(e.contains("routes[0].fallback[0]"), "{e}");
    // A plain group cannot stand in for an LLM group, nor the other way round.
    let e = refuse("upstream = \"a\"\nfallback = [\"b\"]");
    assert!(
        e.contains("routes[0].fallback[0]") && e.contains("cannot stand in"),
        "{e}"
    );
    let e = refuse("upstream = \"c\"\nfallback = [\"a\"]");
    assert!(e.contains("cannot stand in"), "{e}");
    // Another provider family is fine (chat requests are translated for it), but a
    // `model_map` entry may name only families the route has.
    let accepted =
        format!("{base}[[routes]]\nname = \"r\"\nupstream = \"c\"\nfallback = [\"b\"]\n");
    assert!(microgateway::Config::from_toml(&accepted).is_ok());
    let e = refuse(
        "upstream = \"c\"\nllm = { model_map = { \"m\" = [\"openai/x\", \"anthropic/y\"] } }",
    );
    assert!(
        e.contains("routes[0].llm.model_map") && e.contains("no anthropic upstream"),
        "{e}"
    );
    let e = refuse("upstream = \"c\"\nllm = { model_map = { \"m\" = [] } }");
    assert!(e.contains("names no model"), "{e}");
    let e = refuse("upstream = \"a\"\nllm = { models = [\"m\"] }");
    assert!(
        e.contains("routes[0].llm") && e.contains("needs an LLM upstream"),
        "{e}"
    );
    let e = refuse("upstream = \"a\"\nretry = { attempts = 11 }");
    assert!(e.contains("routes[0].retry.attempts"), "{e}");
}

#[tokio::test]
async fn the_header_names_the_answering_target_and_not_a_gateway_error() {
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let gw = GatewayConfig::new()
        .upstream_urls("one", &[healthy.url()], "")
        .route("one", "one", "")
        .start()
        .await;
    let r = get(gw.proxy_addr, "/x").await;
    assert_eq!(
        r.header("x-microgateway-upstream"),
        Some(format!("one/{}", healthy.addr).as_str())
    );
    // A gateway error names nobody.
    let refused = Refused::new();
    let dead = GatewayConfig::new()
        .upstream_urls("dead", &[refused.url()], "")
        .route("dead", "dead", "")
        .start()
        .await;
    let r = get(dead.proxy_addr, "/x").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.header("x-microgateway-upstream"), None);
}

#[tokio::test]
async fn the_header_survives_the_hooked_path_and_its_response_hooks() {
    use crate::common::PluginEntry;
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let refused = Refused::new();
    let dead = refused.url();
    let gw = GatewayConfig::new()
        .upstream_urls("pair", &[dead, healthy.url()], "")
        .route("hooked", "pair", "")
        .plugin(
            PluginEntry::new("strip", "builtin://headers", "on_response").extra(
                "config = { remove = [\"x-microgateway-upstream\"], set = { x-hooked = \"1\" } }",
            ),
        )
        .start()
        .await;
    for _ in 0..4 {
        let r = get(gw.proxy_addr, "/x").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-hooked"), Some("1"));
        assert_eq!(
            r.header("x-microgateway-upstream"),
            Some(format!("pair/{}", healthy.addr).as_str())
        );
    }
}
