//! Small helpers shared by the subcommands.

use std::num::NonZeroUsize;
use std::time::Duration;

/// Parses a positive number of seconds (`0.5`, `30`) for `--timeout`-style flags.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}`: seconds must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a count that must be at least 1 (`-j`, `--per-host`, `--cpu-tasks`, …).
pub fn parse_count(s: &str) -> Result<NonZeroUsize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    NonZeroUsize::new(n).ok_or_else(|| format!("`{s}`: must be at least 1"))
}
