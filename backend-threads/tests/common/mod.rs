//! Test helpers: the workspace's shared ones.

#![allow(unused_imports)]

pub use futurepool_testkit::{watchdog, Event, Semaphore};
