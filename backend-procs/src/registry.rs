//! The task registry: functions that can run in a worker process, known by name to the parent
//! and the worker alike at link time — the Rust analogue of Python pickling a function by its
//! qualified name. No function address ever crosses the process boundary.
//!
//! A function's name is `std::any::type_name` of its function-item type (for example
//! `my_app::tasks::square`): both processes run the same executable, so they agree on it.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::Outcome;

/// One registered function. Made by [`register!`](crate::register); not for direct use.
#[doc(hidden)]
pub struct Entry {
    name: fn() -> &'static str,
    call: fn(&[u8]) -> Outcome,
}

impl Entry {
    #[doc(hidden)]
    pub const fn new(name: fn() -> &'static str, call: fn(&[u8]) -> Outcome) -> Entry {
        Entry { name, call }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &(self.name)())
            .finish_non_exhaustive()
    }
}

inventory::collect!(Entry);

/// Registers functions so a process pool can run them: one line for any number of plain
/// functions `fn(A) -> R` (or `-> Result<T, E>`) whose `A` deserializes and `R` serializes.
///
/// ```ignore
/// fn square(x: u64) -> u64 { x * x }
/// fn parse(s: String) -> Result<u32, String> { s.parse().map_err(|e| format!("{e}")) }
/// futurepool_procs::register!(square, parse);
/// ```
#[macro_export]
macro_rules! register {
    ($($f:path),+ $(,)?) => {$(
        $crate::__private::inventory::submit! {
            $crate::__private::Entry::new(
                || $crate::__private::name_of(&$f),
                |arg| $crate::__private::call(&$f, arg),
            )
        }
    )+};
}

/// The registry name of a function item.
#[doc(hidden)]
pub fn name_of<F>(_: &F) -> &'static str {
    std::any::type_name::<F>()
}

/// Decodes the argument, runs `f` catching a panic, encodes the result.
#[doc(hidden)]
pub fn call<F, A, R>(f: &F, arg: &[u8]) -> Outcome
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let arg: A = match crate::codec::decode(arg) {
        Ok(a) => a,
        Err(e) => return Outcome::BadArgument(e.to_string()),
    };
    match panic::catch_unwind(AssertUnwindSafe(|| f(arg))) {
        Ok(r) => match crate::wire::Bytes::encode(&r) {
            Ok(bytes) => Outcome::Returned(bytes),
            Err(e) => Outcome::BadResult(e.to_string()),
        },
        Err(payload) => {
            let panic = futurepool_core::Panic::from_payload(payload);
            let location = crate::worker::take_panic_location();
            Outcome::Panicked {
                message: panic.message().to_string(),
                location,
            }
        }
    }
}

type Call = fn(&[u8]) -> Outcome;

/// Name → function, built once per process.
fn table() -> &'static HashMap<&'static str, Call> {
    static TABLE: OnceLock<HashMap<&'static str, Call>> = OnceLock::new();
    TABLE.get_or_init(|| {
        inventory::iter::<Entry>
            .into_iter()
            .map(|e| ((e.name)(), e.call))
            .collect()
    })
}

/// Runs the registered function `name` on `arg`.
pub(crate) fn run(name: &str, arg: &[u8]) -> Outcome {
    match table().get(name) {
        Some(call) => call(arg),
        None => Outcome::UnknownTask(name.to_string()),
    }
}

/// `true` if `name` is registered in this executable.
pub(crate) fn is_registered(name: &str) -> bool {
    table().contains_key(name)
}
