//! The two contracts an out-of-process plugin may speak, and their lifecycle calls.
//!
//! The supervisor owns a plain tonic [`Channel`]; the contract decides how the plugin is
//! recognised ([`detect`]), started ([`Contract::start`]: manifest and configuration),
//! pinged ([`Contract::ping`]) and asked to stop ([`Contract::shutdown`]). Hooks build
//! their typed client from the same channel (`native` for microgateway's contract,
//! `tyk` for Tyk AI Studio's).

use super::{convert, dial, tyk};
use crate::config::PluginContract;
use crate::hook::HookType;
use crate::plugin::proto::plugin_client::PluginClient;
use crate::plugin::proto::{Empty, InitializeRequest, PingRequest};
use crate::plugin::{Manifest, PluginError};
use std::time::Duration;
use tonic::transport::Channel;

/// The contract a running plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `microgateway.plugin.v1.Plugin`.
    Microgateway,
    /// Tyk AI Studio's `plugin.PluginService`.
    Tyk,
}

impl Contract {
    /// Name used in logs and the health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::Microgateway => "microgateway",
            Contract::Tyk => "tyk",
        }
    }

    /// The configuration choice that names exactly this contract (for restarts).
    pub fn choice(self) -> PluginContract {
        match self {
            Contract::Microgateway => PluginContract::Microgateway,
            Contract::Tyk => PluginContract::Tyk,
        }
    }

    /// Reads (microgateway) or derives from the stage (Tyk) the manifest, then hands the
    /// plugin its configuration.
    pub async fn start(self, channel: &Channel, start: &Start) -> Result<Manifest, PluginError> {
        match self {
            Contract::Microgateway => {
                let mut client = PluginClient::new(channel.clone());
                let manifest = manifest(&mut client, start.timeout).await?;
                initialize(&mut client, start).await?;
                Ok(manifest)
            }
            Contract::Tyk => {
                tyk::initialize(channel, &start.config, start.timeout).await?;
                Ok(tyk::manifest(&start.name, start.hook_type))
            }
        }
    }

    /// One health ping of a `grpc://` server.
    pub async fn ping(
        self,
        channel: &Channel,
        nonce: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        match self {
            Contract::Microgateway => {
                let mut client = PluginClient::new(channel.clone());
                match tokio::time::timeout(timeout, client.ping(PingRequest { nonce })).await {
                    Err(_) => Err("ping timed out".to_string()),
                    Ok(Err(s)) => Err(format!("ping failed: {}", s.message())),
                    Ok(Ok(r)) if r.get_ref().nonce == nonce => Ok(()),
                    Ok(Ok(_)) => Err("ping answered with the wrong nonce".to_string()),
                }
            }
            Contract::Tyk => tyk::ping(channel, timeout).await,
        }
    }

    /// Asks the plugin to stop through its own contract (Tyk's `Shutdown`); go-plugin's
    /// controller is asked as well by the process supervisor.
    pub async fn shutdown(self, channel: &Channel, grace: Duration) {
        if self == Contract::Tyk {
            tyk::shutdown(channel, grace).await;
        }
    }
}

/// What starting a plugin needs, for either contract.
#[derive(Debug, Clone)]
pub struct Start {
    /// Instance name.
    pub name: String,
    /// The stage, which gives a Tyk plugin its hooks.
    pub hook_type: HookType,
    /// The instance's `config` (null means none).
    pub config: serde_json::Value,
    /// Time allowed for each lifecycle call.
    pub timeout: Duration,
}

/// Whether `channel` serves a plugin: go-plugin's health service (microgateway's
/// contract and every go-plugin process), or for Tyk and `auto` a Tyk `Ping` (Tyk's
/// standalone servers register only `PluginService`).
pub async fn reachable(
    channel: &Channel,
    choice: PluginContract,
    timeout: Duration,
) -> Result<(), String> {
    let health = dial::health(channel, timeout).await;
    match (health, choice) {
        (Ok(()), _) => Ok(()),
        (Err(e), PluginContract::Microgateway) => Err(e),
        (Err(e), _) => tyk::ping(channel, timeout)
            .await
            .map_err(|ping| format!("{e}; Tyk PluginService/Ping: {ping}")),
    }
}

/// Finds the contract of a connected plugin. `auto` asks microgateway's `GetManifest`
/// first and, when that is UNIMPLEMENTED, Tyk's `PluginService/Ping`.
pub async fn detect(
    channel: &Channel,
    choice: PluginContract,
    timeout: Duration,
) -> Result<Contract, PluginError> {
    match choice {
        PluginContract::Microgateway => return Ok(Contract::Microgateway),
        PluginContract::Tyk => return Ok(Contract::Tyk),
        PluginContract::Auto => {}
    }
    let mut client = PluginClient::new(channel.clone());
    let ours = match tokio::time::timeout(timeout, client.get_manifest(Empty {})).await {
        Err(_) => return Err(PluginError::Load("GetManifest timed out".into())),
        Ok(Ok(_)) => return Ok(Contract::Microgateway),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => s,
        Ok(Err(s)) => {
            return Err(PluginError::Load(format!(
                "GetManifest failed: {}",
                s.message()
            )));
        }
    };
    match tyk::probe(channel, timeout).await {
        Ok(()) => Ok(Contract::Tyk),
        Err(tyk) => Err(PluginError::Load(format!(
            "plugin speaks neither contract: microgateway.plugin.v1.Plugin/GetManifest \
             answered {:?} ({}), Tyk AI Studio's plugin.PluginService/Ping answered {tyk}; \
             set contract = \"microgateway\" or \"tyk\" to see that contract's own error",
            ours.code(),
            ours.message()
        ))),
    }
}

/// Fetches microgateway's manifest.
pub async fn manifest(
    client: &mut PluginClient<Channel>,
    timeout: Duration,
) -> Result<Manifest, PluginError> {
    match tokio::time::timeout(timeout, client.get_manifest(Empty {})).await {
        Err(_) => Err(PluginError::Load("GetManifest timed out".into())),
        Ok(Err(s)) => Err(PluginError::Load(format!(
            "GetManifest failed: {}",
            s.message()
        ))),
        Ok(Ok(m)) => Ok(convert::manifest_from_pb(m.into_inner())),
    }
}

/// Sends microgateway's `Initialize` with the configuration as JSON text.
async fn initialize(client: &mut PluginClient<Channel>, start: &Start) -> Result<(), PluginError> {
    let config_json = if start.config.is_null() {
        "{}".to_string()
    } else {
        start.config.to_string()
    };
    let request = InitializeRequest {
        config_json,
        instance: start.name.clone(),
    };
    match tokio::time::timeout(start.timeout, client.initialize(request)).await {
        Err(_) => Err(PluginError::Load("Initialize timed out".into())),
        Ok(Err(s)) => Err(PluginError::Load(format!(
            "Initialize failed: {}",
            s.message()
        ))),
        Ok(Ok(r)) if r.get_ref().ok => Ok(()),
        Ok(Ok(r)) => Err(PluginError::Load(format!(
            "plugin refused its configuration: {}",
            r.get_ref().error
        ))),
    }
}
