//! Plugins die with the gateway: on Linux the child asks the kernel for SIGKILL when its
//! parent exits (`PR_SET_PDEATHSIG`), so even a SIGKILLed gateway leaves no orphans.
//!
//! This is the crate's only `unsafe` code: `pre_exec` is unsafe because the closure
//! runs between `fork` and `exec`, where only async-signal-safe operations are allowed.

use tokio::process::Command;

/// Arranges for the spawned process to receive SIGKILL when the gateway exits.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure performs a single `prctl` system call through rustix (no
    // allocation, no locks), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}
