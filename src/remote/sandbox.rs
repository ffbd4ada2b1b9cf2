//! Least privilege for plugin processes (`[plugin_runtime.sandbox]`): everything that
//! can fail is prepared in the gateway (opening Landlock rules, checking kernel
//! support), and the child only makes the final system calls between `fork` and `exec`
//! (see `orphan.rs`, the crate's only `unsafe`).

use crate::config::SandboxConfig;
use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, path_beneath_rules,
};
use rustix::process::{Resource, Rlimit};
use std::path::Path;

/// A sandbox setting that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel has no (usable) Landlock.
    #[error("plugin_runtime.sandbox.landlock: Landlock is not available on this kernel")]
    LandlockUnsupported(#[source] landlock::RulesetError),
    /// A Landlock rule could not be added.
    #[error("plugin_runtime.sandbox.landlock: cannot add a rule")]
    LandlockRule(#[source] landlock::RulesetError),
    /// The plugin's private directory could not be handed to `uid`.
    #[error("plugin_runtime.sandbox.uid: cannot give the socket directory to uid {uid}")]
    Chown {
        /// Target user id.
        uid: u32,
        /// The OS error from `chown`: usually EPERM, when the gateway is not root.
        #[source]
        source: std::io::Error,
    },
}

/// What the child applies to itself before `exec`.
pub struct ChildPlan {
    no_new_privs: bool,
    rlimits: Vec<(Resource, u64)>,
    landlock: Option<RulesetCreated>,
}

impl std::fmt::Debug for ChildPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildPlan")
            .field("no_new_privs", &self.no_new_privs)
            .field("rlimits", &self.rlimits.len())
            .field("landlock", &self.landlock.is_some())
            .finish()
    }
}

/// The ABI whose filesystem rights are requested; V1 is on every Landlock kernel, and
/// it covers reading, writing, creating and executing files.
const LANDLOCK_ABI: ABI = ABI::V1;

impl ChildPlan {
    /// Prepares the sandbox of one plugin whose private directory is `private_dir`.
    pub fn new(config: &SandboxConfig, private_dir: &Path) -> Result<ChildPlan, SandboxError> {
        let limits = [
            (Resource::Nofile, config.max_open_files),
            (Resource::As, config.max_memory_bytes),
            (Resource::Nproc, config.max_processes),
            (Resource::Cpu, config.max_cpu_seconds),
            (Resource::Fsize, config.max_file_bytes),
        ];
        let rlimits = limits
            .into_iter()
            .filter_map(|(r, v)| v.map(|v| (r, v)))
            .collect();
        let landlock = if config.landlock {
            Some(landlock_rules(config, private_dir)?)
        } else {
            None
        };
        if let Some(uid) = config.uid {
            let gid = config.gid.unwrap_or(uid);
            std::os::unix::fs::chown(private_dir, Some(uid), Some(gid))
                .map_err(|source| SandboxError::Chown { uid, source })?;
        }
        Ok(ChildPlan {
            no_new_privs: config.no_new_privs,
            rlimits,
            landlock,
        })
    }

    /// Applies the plan to the calling process. Runs in the forked child, so it makes
    /// system calls only: no allocation, no locks.
    pub fn apply(&mut self) -> std::io::Result<()> {
        for &(resource, value) in &self.rlimits {
            let limit = Rlimit {
                current: Some(value),
                maximum: Some(value),
            };
            rustix::process::setrlimit(resource, limit).map_err(std::io::Error::from)?;
        }
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true).map_err(std::io::Error::from)?;
        }
        if let Some(ruleset) = self.landlock.take() {
            // An error here carries no allocation: report EPERM, which the spawner
            // turns into a message naming the setting.
            ruleset
                .restrict_self()
                .map_err(|_| std::io::Error::from(rustix::io::Errno::PERM))?;
        }
        Ok(())
    }
}

/// Read-only everywhere; read-write in the private directory, `/dev/null` and the
/// configured extra paths. Refused outright where the kernel cannot enforce it.
fn landlock_rules(
    config: &SandboxConfig,
    private_dir: &Path,
) -> Result<RulesetCreated, SandboxError> {
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let read = AccessFs::from_read(LANDLOCK_ABI);
    let mut writable: Vec<&Path> = vec![private_dir, Path::new("/dev/null")];
    writable.extend(config.landlock_writable.iter().map(|p| p.as_path()));
    landlock::Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .and_then(|r| r.create())
        .map_err(SandboxError::LandlockUnsupported)?
        .add_rules(path_beneath_rules(["/"], read))
        .and_then(|r| r.add_rules(path_beneath_rules(writable, all)))
        .map_err(SandboxError::LandlockRule)
}

/// True when this kernel enforces Landlock (used by `check` and to skip tests).
pub fn landlock_supported() -> bool {
    landlock::Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .and_then(|r| r.create())
        .is_ok()
}
