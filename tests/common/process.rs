//! Facts about processes read from `/proc`, for tests that check plugin processes end.

/// True when `pid` no longer runs (gone, or a zombie awaiting a reaper we do not own).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}
