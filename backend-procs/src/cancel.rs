//! `cancel_kills_running`: how `Future::cancel` reaches a task that is already running.
//!
//! The pool installs a cancel hook on the future *when it is submitted* (while it is still
//! pending), so there is no moment at which the future is running but cannot be cancelled. The
//! hook marks the task's [`StopCell`] stopped and kills the worker that is running it, if a
//! call is in progress; the manager thread checks the cell before the call (a task stopped in
//! between is never sent) and after it (the worker it killed is reaped and the future ends
//! `Cancelled`).

use std::sync::Mutex;

use crate::manager::lock;
use crate::process::Killer;

/// The worker running a task while a call is in progress, and whether a stop was requested;
/// both under one lock.
#[derive(Default)]
pub(crate) struct StopCell {
    state: Mutex<(Option<Killer>, bool)>,
}

impl StopCell {
    /// From `Future::cancel`: mark the task stopped and kill its worker if a call is running.
    pub(crate) fn request(&self) {
        let mut state = lock(&self.state);
        state.1 = true;
        if let Some(killer) = &state.0 {
            killer.kill();
        }
    }

    /// Before a call: `false` if a stop was already requested.
    pub(crate) fn attach(&self, killer: Killer) -> bool {
        let mut state = lock(&self.state);
        state.0 = Some(killer);
        !state.1
    }

    /// After a call: `true` if a stop was requested (the worker may have been killed).
    pub(crate) fn detach(&self) -> bool {
        let mut state = lock(&self.state);
        state.0 = None;
        state.1
    }
}
