//! The hold-back decision on its own: whether a job submitted now has its token held back for
//! its waiter ([`crate::hold`]). No locks, no threads: events in, a yes or no out, so the rule
//! can be tuned (and tested, below) without reading the dispatch loop.
//!
//! The rule: hold a job submitted to an empty backlog once the pool's last [`HOLD_AFTER`] jobs
//! were each run by a waiter that came within [`PROMPTLY`] of the submit. A late waiter takes
//! 2 off the run (not back to zero: one preemption on a busy machine should not cost a long
//! run of hand-offs to manager threads — counted: 39 late waiters in 35 000 round trips, each
//! of which would have cost 8 eager ones); any other kind of interest in a future, or a held
//! job that nobody came for within the ticker's two looks, ends the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Jobs in a row run by a waiter that came within [`PROMPTLY`] of the submit, before jobs are
/// held.
pub(crate) const HOLD_AFTER: usize = 8;

/// A waiter that blocks on the future this soon after the submit counts as prompt.
pub(crate) const PROMPTLY: Duration = Duration::from_micros(50);

/// What a late waiter takes off the run of prompt ones.
const LATE_COSTS: usize = 2;

/// The run of prompt waiters, shared by the pool's threads (relaxed: a stale read holds or
/// releases one job differently, never loses one).
#[derive(Debug, Default)]
pub(crate) struct HoldPolicy {
    prompt: AtomicUsize,
}

impl HoldPolicy {
    /// A waiter came to run its own job, `waited` after the submit.
    pub(crate) fn waiter_came(&self, waited: Duration) {
        let prompt = waited < PROMPTLY;
        let _ = self
            .prompt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(if prompt {
                    (n + 1).min(HOLD_AFTER)
                } else {
                    n.saturating_sub(LATE_COSTS)
                })
            });
    }

    /// Another kind of use than submit-then-wait (a timed wait, a callback, a cancel, a
    /// dropped future…), or a held job nobody came for: hold nothing for a while.
    pub(crate) fn interrupted(&self) {
        self.prompt.store(0, Ordering::Relaxed);
    }

    /// Whether a job submitted now, to a backlog that `was_empty`, is held back.
    pub(crate) fn holds(&self, was_empty: bool) -> bool {
        was_empty && self.prompt.load(Ordering::Relaxed) >= HOLD_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: Duration = Duration::from_micros(10);
    const LATE: Duration = Duration::from_millis(1);

    #[derive(Clone, Copy, Debug)]
    enum Event {
        Prompt(usize),
        Late,
        Interrupt,
    }
    use Event::*;

    #[test]
    fn the_rule_as_a_table() {
        // (events so far, holds a job submitted to an empty backlog)
        let table: &[(&[Event], bool)] = &[
            (&[], false),
            (&[Prompt(7)], false),
            (&[Prompt(8)], true),
            (&[Prompt(100)], true),
            (&[Prompt(8), Late], false),
            (&[Prompt(8), Late, Prompt(1)], false),
            (&[Prompt(8), Late, Prompt(2)], true),
            // Capped at HOLD_AFTER: a long run buys no credit against late waiters.
            (&[Prompt(100), Late, Prompt(1)], false),
            (&[Prompt(8), Late, Late, Late, Late, Prompt(7)], false),
            (&[Prompt(8), Interrupt], false),
            (&[Prompt(8), Interrupt, Prompt(7)], false),
            (&[Prompt(8), Interrupt, Prompt(8)], true),
            (&[Late, Late, Prompt(8)], true),
        ];
        for (events, holds) in table {
            let policy = HoldPolicy::default();
            for event in *events {
                match *event {
                    Prompt(n) => (0..n).for_each(|_| policy.waiter_came(PROMPT)),
                    Late => policy.waiter_came(LATE),
                    Interrupt => policy.interrupted(),
                }
            }
            assert_eq!(policy.holds(true), *holds, "after {events:?}");
            // Never behind another job: a backlog that was not empty has a manager at it.
            assert!(!policy.holds(false), "after {events:?}, non-empty backlog");
        }
    }

    #[test]
    fn promptly_is_the_boundary() {
        let policy = HoldPolicy::default();
        (0..HOLD_AFTER).for_each(|_| policy.waiter_came(PROMPTLY));
        assert!(!policy.holds(true), "a waiter at exactly PROMPTLY is late");
    }
}
