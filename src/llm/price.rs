//! The price table (#18): shipped prices per model, overridden by `[llm.prices]`, and
//! the cost of a token usage.
//!
//! The shipped table is `prices.toml`, embedded at build time. A model is priced by its
//! own name, or else by the longest table name that is a prefix of it ending at a `-`,
//! so dated and suffixed names (`claude-sonnet-4-5-20250929`) need no entry of their own.

use crate::config::{LlmConfig, Price};
use crate::llm::TokenUsage;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The shipped price table.
const SHIPPED: &str = include_str!("prices.toml");

/// Errors building a price table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// The shipped `prices.toml` does not parse (a build defect).
    #[error("the shipped price table does not parse: {0}")]
    Shipped(String),
    /// A price is negative, NaN or infinite.
    #[error("llm.prices.\"{model}\".{field}: {value} is not a finite price of zero or more")]
    Invalid {
        /// The model the price belongs to.
        model: String,
        /// The price field: `input`, `output`, `cached_input` or `cache_write`.
        field: &'static str,
        /// The offending value.
        value: f64,
    },
}

/// The layout of `prices.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Shipped {
    /// Read by [`Prices::taken`] from the text; required here so the file keeps it.
    #[allow(dead_code)]
    taken: String,
    models: BTreeMap<String, Price>,
}

/// Prices by model name in US dollars per million tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    models: BTreeMap<String, Price>,
}

impl Prices {
    /// The shipped table with `config.prices` over it (an override replaces the shipped
    /// entry of the same name).
    pub fn new(config: &LlmConfig) -> Result<Prices, PriceError> {
        use figment::providers::{Format, Toml};
        let shipped: Shipped = figment::Figment::from(Toml::string(SHIPPED))
            .extract()
            .map_err(|e| PriceError::Shipped(e.to_string()))?;
        let mut models = shipped.models;
        models.extend(config.prices.iter().map(|(k, v)| (k.clone(), *v)));
        for (model, price) in &models {
            validate(model, price)?;
        }
        Ok(Prices { models })
    }

    /// The price of `model`: its exact name, else the longest table name that is a
    /// prefix of it followed by `-`; a leading `provider/` is tried without too.
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.lookup_name(model).or_else(|| {
            let (_, bare) = model.split_once('/')?;
            self.lookup_name(bare)
        })
    }

    fn lookup_name(&self, model: &str) -> Option<&Price> {
        if let Some(price) = self.models.get(model) {
            return Some(price);
        }
        // Each cut before a '-', from the right, is a shorter candidate: the first
        // candidate found is the longest name that prefixes `model` at a boundary.
        model
            .rmatch_indices('-')
            .find_map(|(i, _)| self.models.get(&model[..i]))
    }

    /// What `usage` cost in US dollars; `None` when its model has no price.
    pub fn cost(&self, usage: &TokenUsage) -> Option<f64> {
        let price = self.lookup(&usage.model)?;
        let plain = usage
            .prompt_tokens
            .saturating_sub(usage.cached_input_tokens)
            .saturating_sub(usage.cache_creation_tokens);
        let micro = plain as f64 * price.input
            + usage.cached_input_tokens as f64 * price.cached_input.unwrap_or(price.input)
            + usage.cache_creation_tokens as f64 * price.cache_write.unwrap_or(price.input)
            + usage.completion_tokens as f64 * price.output;
        Some(micro / 1e6)
    }

    /// The date the shipped table's prices were taken (`YYYY-MM-DD`).
    pub fn taken() -> &'static str {
        SHIPPED
            .lines()
            .filter_map(|l| l.trim().strip_prefix("taken"))
            .filter_map(|l| l.trim_start().strip_prefix('='))
            .map(|l| l.trim().trim_matches('"'))
            .next()
            .unwrap_or("")
    }

    /// How many model names the table prices.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// The table prices no model.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

fn validate(model: &str, price: &Price) -> Result<(), PriceError> {
    let fields = [
        ("input", Some(price.input)),
        ("output", Some(price.output)),
        ("cached_input", price.cached_input),
        ("cache_write", price.cache_write),
    ];
    for (field, value) in fields {
        if let Some(value) = value.filter(|v| !v.is_finite() || *v < 0.0) {
            return Err(PriceError::Invalid {
                model: model.to_string(),
                field,
                value,
            });
        }
    }
    Ok(())
}

static CURRENT: OnceLock<ArcSwap<Prices>> = OnceLock::new();

fn slot() -> &'static ArcSwap<Prices> {
    CURRENT.get_or_init(|| {
        // The shipped table parses (a unit test checks it); an empty table is the
        // harmless fallback should a build ever ship a broken one.
        ArcSwap::from_pointee(Prices::new(&LlmConfig::default()).unwrap_or_default())
    })
}

/// Makes `prices` the process-wide table: at start and on every config reload.
pub fn install(prices: Prices) {
    slot().store(Arc::new(prices));
}

/// The process-wide table: the last one installed, or the shipped one.
pub fn current() -> Arc<Prices> {
    slot().load_full()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64) -> Price {
        Price {
            input,
            output,
            cached_input: None,
            cache_write: None,
        }
    }

    fn usage(model: &str, prompt: u64, completion: u64, cached: u64, created: u64) -> TokenUsage {
        TokenUsage {
            model: model.into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_input_tokens: cached,
            cache_creation_tokens: created,
        }
    }

    #[test]
    fn shipped_table_parses_with_its_date() {
        let prices = Prices::new(&LlmConfig::default()).expect("shipped table");
        assert_eq!(Prices::taken(), "2026-12-02");
        assert!(prices.len() >= 20, "{}", prices.len());
        let gpt4o = prices.lookup("gpt-4o").expect("gpt-4o");
        assert_eq!((gpt4o.input, gpt4o.output), (2.5, 10.0));
        assert_eq!(gpt4o.cached_input, Some(1.25));
        let sonnet = prices.lookup("claude-sonnet-4-5").expect("sonnet");
        assert_eq!(sonnet.cache_write, Some(3.75));
        // Dotted names are keys, not nested tables.
        assert_eq!(prices.lookup("gpt-4.1-nano").map(|p| p.input), Some(0.1));
    }

    #[test]
    fn prefix_lookup_takes_the_longest_name_at_a_dash() {
        let prices = Prices::new(&LlmConfig::default()).expect("shipped table");
        let input = |m: &str| prices.lookup(m).map(|p| p.input);
        assert_eq!(input("claude-sonnet-4-5-20250929"), Some(3.0));
        assert_eq!(input("gpt-4o-2024-08-06"), Some(2.5));
        assert_eq!(input("gpt-4o-mini"), Some(0.15));
        assert_eq!(input("gpt-4o-mini-2024-07-18"), Some(0.15));
        assert_eq!(input("claude-opus-4-1-20250805"), Some(15.0));
        assert_eq!(input("claude-3-5-haiku-20241022"), Some(0.8));
        assert_eq!(input("openai/gpt-4o"), Some(2.5));
        assert_eq!(input("anthropic/claude-haiku-4-5-20251001"), Some(1.0));
        // A prefix must end at a '-': "gpt-4o" does not price "gpt-4oz".
        assert_eq!(input("gpt-4oz"), None);
        assert_eq!(input("o3x"), None);
        assert_eq!(input("llama-3"), None);
        assert_eq!(input(""), None);
    }

    #[test]
    fn overrides_replace_and_add_entries() {
        let mut config = LlmConfig::default();
        config.prices.insert("gpt-4o".into(), price(1.0, 2.0));
        config.prices.insert("my-model".into(), price(0.5, 0.5));
        let shipped = Prices::new(&LlmConfig::default()).expect("shipped");
        let prices = Prices::new(&config).expect("overridden");
        assert_eq!(prices.len(), shipped.len() + 1);
        // The override replaces the whole entry, cached price included.
        assert_eq!(prices.lookup("gpt-4o-2024-08-06"), Some(&price(1.0, 2.0)));
        assert_eq!(prices.lookup("my-model-v2").map(|p| p.output), Some(0.5));
        assert_eq!(prices.lookup("gpt-4o-mini").map(|p| p.input), Some(0.15));
    }

    #[test]
    fn invalid_prices_are_named() {
        for (bad, field) in [
            (price(-1.0, 1.0), "input"),
            (price(1.0, f64::NAN), "output"),
            (
                Price {
                    cache_write: Some(f64::INFINITY),
                    ..price(1.0, 1.0)
                },
                "cache_write",
            ),
        ] {
            let mut config = LlmConfig::default();
            config.prices.insert("m".into(), bad);
            match Prices::new(&config) {
                Err(PriceError::Invalid {
                    model, field: f, ..
                }) => {
                    assert_eq!((model.as_str(), f), ("m", field));
                }
                other => panic!("{other:?}"),
            }
        }
        let mut config = LlmConfig::default();
        config.prices.insert("free".into(), price(0.0, 0.0));
        assert!(Prices::new(&config).is_ok());
    }

    #[test]
    fn cost_arithmetic() {
        let mut config = LlmConfig::default();
        config.prices.insert(
            "cached".into(),
            Price {
                input: 3.0,
                output: 15.0,
                cached_input: Some(0.3),
                cache_write: Some(3.75),
            },
        );
        config.prices.insert("plain".into(), price(2.0, 8.0));
        let prices = Prices::new(&config).expect("prices");
        // 1e6 prompt tokens of which 200k read and 100k written, plus 1e5 completion:
        // 700k * 3 + 200k * 0.3 + 100k * 3.75 + 100k * 15 = 2.1 + 0.06 + 0.375 + 1.5.
        let cost = prices.cost(&usage("cached-1", 1_000_000, 100_000, 200_000, 100_000));
        assert!((cost.expect("priced") - 4.035).abs() < 1e-12, "{cost:?}");
        // Without cache prices every input token is an input token: 1M * 2 + 500k * 8.
        let cost = prices.cost(&usage("plain", 1_000_000, 500_000, 300_000, 100_000));
        assert!((cost.expect("priced") - 6.0).abs() < 1e-12, "{cost:?}");
        // Shipped gpt-4o: 1000 prompt (400 cached), 200 completion.
        // 600 * 2.5 + 400 * 1.25 + 200 * 10 = 1500 + 500 + 2000 = 4000 micro-dollars.
        let cost = prices.cost(&usage("gpt-4o-2024-08-06", 1000, 200, 400, 0));
        assert!((cost.expect("priced") - 0.004).abs() < 1e-15, "{cost:?}");
        // Inconsistent counts never go negative.
        let cost = prices.cost(&usage("plain", 10, 0, 20, 0));
        assert!((cost.expect("priced") - 20.0 * 2.0 / 1e6).abs() < 1e-15);
        assert_eq!(prices.cost(&usage("unknown-model", 10, 10, 0, 0)), None);
    }

    #[test]
    fn install_replaces_the_current_table() {
        // The only test touching the process-wide table, so no other test races it.
        assert!(current().lookup("gpt-4o").is_some());
        let mut config = LlmConfig::default();
        config
            .prices
            .insert("installed-model".into(), price(1.0, 1.0));
        install(Prices::new(&config).expect("prices"));
        assert!(current().lookup("installed-model").is_some());
        install(Prices::new(&LlmConfig::default()).expect("prices"));
        assert!(current().lookup("installed-model").is_none());
    }
}
