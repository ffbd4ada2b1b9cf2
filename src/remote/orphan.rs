//! The child's last steps between `fork` and `exec`: die with the gateway and enter the
//! sandbox.
//!
//! On Linux the child asks the kernel for SIGKILL when its parent exits
//! (`PR_SET_PDEATHSIG`), so even a SIGKILLed gateway leaves no orphans; then it applies
//! the [`ChildPlan`](super::sandbox::ChildPlan) prepared by the gateway (rlimits,
//! `no_new_privs`, Landlock). This is the crate's only `unsafe` code: `pre_exec` is
//! unsafe because the closure runs between `fork` and `exec`, where only
//! async-signal-safe operations are allowed.

use super::sandbox::ChildPlan;
use tokio::process::Command;

/// Arranges for the spawned process to receive SIGKILL when the gateway exits, and to
/// apply `plan` to itself right before `exec`.
#[allow(unsafe_code)]
pub fn prepare_child(cmd: &mut Command, mut plan: ChildPlan) {
    // SAFETY: the closure performs only system calls through rustix and landlock
    // (prctl, setrlimit, landlock_restrict_self: no allocation, no locks), which are
    // async-signal-safe. It runs after std has switched uid/gid, so the death signal is
    // not cleared by a credential change.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)?;
            plan.apply()
        });
    }
}
