//! The send-ahead decision on its own: whether a manager thread queues more jobs on a worker
//! behind the running one ([`crate::dispatch`]). Events in (each task's time on its worker), a
//! yes or no out.
//!
//! The rule: send ahead while a moving average of recent tasks' times (weight 1/8) is under
//! [`PIPELINE_BELOW`]. Short tasks gain most (the worker finds its next request in its socket,
//! neither side sleeps between tasks: the submit-all figure); a long task would keep the jobs
//! queued behind it from other workers that are free. A new pool starts from
//! [`INITIAL_PACE`], above the line: it sends nothing ahead until a few of its tasks have
//! shown they are short.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Jobs are sent ahead only while recent tasks took less than this on average.
const PIPELINE_BELOW: Duration = Duration::from_millis(1);

/// The moving average a pool starts from.
const INITIAL_PACE: Duration = Duration::from_millis(10);

/// A moving average of recent tasks' time on their worker, in nanoseconds (relaxed: a stale
/// read sends one job ahead or not, never loses one).
#[derive(Debug)]
pub(crate) struct Pace {
    ns: AtomicU64,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            ns: AtomicU64::new(nanos(INITIAL_PACE)),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Pace {
    /// Folds one task's time on its worker into the average.
    pub(crate) fn note(&self, took: Duration) {
        let old = self.ns.load(Ordering::Relaxed);
        let new = old - old / 8 + nanos(took) / 8;
        self.ns.store(new, Ordering::Relaxed);
    }

    /// Whether jobs are sent ahead now.
    pub(crate) fn sends_ahead(&self) -> bool {
        self.ns.load(Ordering::Relaxed) < nanos(PIPELINE_BELOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(tasks: &[(usize, Duration)]) -> bool {
        let pace = Pace::default();
        for &(n, took) in tasks {
            (0..n).for_each(|_| pace.note(took));
        }
        pace.sends_ahead()
    }

    #[test]
    fn the_rule_as_a_table() {
        let us = Duration::from_micros;
        let ms = Duration::from_millis;
        // (tasks so far: how many of how long each, sends ahead)
        let table: &[(&[(usize, Duration)], bool)] = &[
            (&[], false),
            // 10 ms → under 1 ms takes a few short tasks: 18 of 10 µs.
            (&[(17, us(10))], false),
            (&[(18, us(10))], true),
            (&[(1000, us(900))], true),
            (&[(1000, ms(1))], false),
            // One long task among short ones stops it at once (100 ms / 8 > 1 ms)…
            (&[(100, us(10)), (1, ms(100))], false),
            // …for a while: 8 ms / 8 alone is right at the line.
            (&[(100, us(10)), (1, ms(8))], false),
            (&[(100, us(10)), (1, ms(7))], true),
            // and short tasks bring it back.
            (&[(100, us(10)), (1, ms(100)), (37, us(10))], true),
            // A task of a year does not overflow.
            (&[(1, Duration::from_secs(365 * 86_400))], false),
            (&[(1, Duration::MAX)], false),
        ];
        for (tasks, sends) in table {
            assert_eq!(after(tasks), *sends, "after {tasks:?}");
        }
    }
}
