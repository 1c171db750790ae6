//! Time: timeouts become deadlines once, at the API edge (like std's `send_timeout` →
//! `send_deadline`), so a wait that wakes up spuriously or in several steps never stretches.
//!
//! Under `--cfg futurepool_loom` the clock is still the real one, but every timed wait in the
//! [facade](crate::loom) reports its deadline as passed at once: loom has no time, and a wait
//! that "times out immediately" is one of the behaviours a real timed wait can have.

use std::time::{Duration, Instant};

/// The deadline `timeout` from now; `None` (wait forever) for no timeout or one so long that
/// the clock cannot represent its end.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}
