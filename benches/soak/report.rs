//! Small formatting helpers and what the report says about the machine.

use std::time::Duration;

/// KiB as MiB with one decimal.
pub(crate) fn kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Units per second over `wall`.
pub(crate) fn rate(units: u64, wall: Duration) -> f64 {
    units as f64 / wall.as_secs_f64().max(1e-9)
}
