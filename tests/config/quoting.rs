//! The harness's own TOML quoting: every string [`toml_str`] writes, and so every name,
//! command and `env` value a [`PluginEntry`] writes, reads back unchanged, whatever
//! characters it holds.

use crate::common::PluginEntry;
use crate::common::gateway::toml_str;
use figment::Figment;
use figment::providers::{Format, Toml};

/// Quotes, backslashes, every kind of control character, escapes that must stay literal,
/// and text outside ASCII.
const AWKWARD: &str = "say \"hi\" \\ C:\\dir \\n \\u0041 ${HOME} 'single' \n\t\r \u{0} \u{1b}[0m \u{7f} \u{85} é ✓ 🦀";

#[test]
fn toml_strings_read_back_unchanged() {
    let mut every: String = (0u8..0x80).map(char::from).collect();
    every.push_str(AWKWARD);
    for text in [every.as_str(), AWKWARD, "", "plain"] {
        let toml = format!("value = {}\n", toml_str(text));
        let read: String = Figment::from(Toml::string(&toml))
            .extract_inner("value")
            .unwrap_or_else(|e| panic!("{e}: {toml}"));
        assert_eq!(read, text, "{toml}");
    }
}

#[test]
fn plugin_entries_keep_their_strings() {
    // A NUL byte cannot be handed to a process, so validation refuses it in `env`.
    let value = AWKWARD.replace('\u{0}', "");
    let entry = PluginEntry::new("p", "builtin://headers", "pre_auth")
        .env("AWKWARD", &value)
        .env("PLAIN", "1")
        .extra("order = 3");
    let toml = format!(
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:9\"]\n{}",
        entry.toml()
    );
    let config = microgateway::Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}: {toml}"));
    let plugin = &config.plugins[0];
    assert_eq!(
        (plugin.name.as_str(), plugin.command.as_str()),
        ("p", "builtin://headers")
    );
    assert_eq!(plugin.env["AWKWARD"], value);
    assert_eq!(plugin.env["PLAIN"], "1");
    assert_eq!(plugin.order, 3);
}
