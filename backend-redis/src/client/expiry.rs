//! Client-side deadlines: the timer thread fails every future past its deadline with
//! `TimedOut` — no I/O on that thread, so nothing Redis does (frozen, down, slow) delays an
//! outcome — and hands the expired tasks to the cleaner thread, which takes them off the
//! queue (the cancel script; a kill if one is running) when Redis answers.
//!
//! Both threads run only in a pool with a deadline. The clean-up is best effort and bounded:
//! at most [`CLEANUP_QUEUE`] tasks wait for it, and once the pool is closing it gets
//! [`CLOSING_BUDGET`] more; a task not cleaned up may still run on an agent, and its result
//! is dropped (its future is already done).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use futurepool_core::FutureError;

use super::{Pending, Shared};
use crate::link::Link;

/// The timer's longest sleep, so it notices the pool closing.
const TICK: Duration = Duration::from_millis(200);
/// How many expired tasks may wait for their clean-up; beyond, the oldest are given up.
const CLEANUP_QUEUE: usize = 100_000;
/// How long the cleaner goes on once the pool is closing with nothing unfinished.
const CLOSING_BUDGET: Duration = Duration::from_secs(5);
/// How long one clean-up command may take before Redis counts as unreachable for now.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// An expired task to take off the queue: its id, entry id and argument blob key.
type Expired = (String, String, Option<String>);

/// The cleaner's queue.
#[derive(Default)]
pub(super) struct Cleanup {
    queue: Mutex<VecDeque<Expired>>,
    ready: Condvar,
}

impl Cleanup {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Expired>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, tasks: impl IntoIterator<Item = Expired>) {
        let mut queue = self.queue();
        queue.extend(tasks);
        let over = queue.len().saturating_sub(CLEANUP_QUEUE);
        if over > 0 {
            queue.drain(..over);
            log::error!(
                "futurepool-redis: gave up cleaning up {over} expired tasks (Redis unreachable \
                 too long): they may still run, and their results are dropped"
            );
        }
        drop(queue);
        self.ready.notify_all();
    }

    /// Wakes the cleaner (the pool is closing).
    pub(super) fn wake(&self) {
        let _queue = self.queue();
        self.ready.notify_all();
    }
}

impl Shared {
    /// The timer thread: fails each future at its deadline, until the pool is closing with
    /// nothing unfinished.
    pub(super) fn expire_loop(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            if state.pending.is_empty() && self.closing.load(Ordering::Acquire) {
                break;
            }
            let now = Instant::now();
            let mut expired: Vec<Pending> = Vec::new();
            let mut next = None;
            while let Some(&std::cmp::Reverse((deadline, seq))) = state.deadlines.peek() {
                if deadline > now {
                    next = Some(deadline);
                    break;
                }
                state.deadlines.pop();
                expired.extend(state.pending.remove(&seq));
            }
            if !expired.is_empty() {
                if state.pending.is_empty() {
                    self.idle.notify_all();
                }
                drop(state);
                // Every expired future first, then their clean-up, elsewhere.
                let tasks: Vec<Expired> = expired
                    .iter()
                    .filter_map(|p| {
                        p.entry
                            .clone()
                            .map(|entry| (p.task.clone(), entry, p.blob.clone()))
                    })
                    .collect();
                for pending in expired {
                    pending.sink.fail(FutureError::TimedOut);
                }
                if !tasks.is_empty() {
                    self.cleanup.push(tasks);
                }
                state = self.lock();
                continue;
            }
            let wait = next.map_or(TICK, |d| d.saturating_duration_since(now).min(TICK));
            state = self
                .timer
                .wait_timeout(state, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(state);
        self.cleanup.wake();
    }

    /// The cleaner thread: runs the cancel script (with a kill) for each expired task, in
    /// order, while Redis answers; waits with a growing pause while it does not.
    pub(super) fn cleanup_loop(self: Arc<Self>) {
        let mut link = Link::bounded(self.client.clone(), COMMAND_TIMEOUT);
        let mut pause = Duration::from_millis(50);
        let mut closing_since: Option<Instant> = None;
        let mut unreachable = false;
        loop {
            let closing = self.closing.load(Ordering::Acquire) && self.lock().pending.is_empty();
            if closing {
                let since = *closing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= CLOSING_BUDGET {
                    let left = self.cleanup.queue().len();
                    if left > 0 {
                        log::error!(
                            "futurepool-redis: {left} expired tasks not cleaned up at shutdown \
                             ({} unreachable): they may still run",
                            self.shown
                        );
                    }
                    return;
                }
            }
            let next = {
                let mut queue = self.cleanup.queue();
                if queue.is_empty() {
                    if closing {
                        return;
                    }
                    queue = self
                        .cleanup
                        .ready
                        .wait_timeout(queue, TICK)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                queue.front().cloned()
            };
            let Some((task, entry, blob)) = next else {
                continue;
            };
            match self.run_cancel(&mut link, &task, &entry, blob.as_deref(), true) {
                Err(e) if crate::link::is_transient(&e) => {
                    if !unreachable {
                        log::warn!(
                            "futurepool-redis: cannot clean up expired tasks yet ({}: {}); \
                             retrying",
                            self.shown,
                            super::describe(&e)
                        );
                        unreachable = true;
                    }
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => log::error!(
                    "futurepool-redis: cannot cancel expired task {task}: {}",
                    super::describe(&e)
                ),
                Ok(_) => {}
            }
            unreachable = false;
            pause = Duration::from_millis(50);
            self.cleanup.queue().pop_front();
        }
    }
}
