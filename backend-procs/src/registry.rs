//! The task registry: functions that can run in a worker process, known by name to the parent
//! and the worker alike at link time — the Rust analogue of Python pickling a function by its
//! qualified name. No function address ever crosses the process boundary.
//!
//! A function's name is `std::any::type_name` of its function-item type (for example
//! `my_app::tasks::square`): both processes run the same executable, so they agree on it.
//!
//! Programs built from different code (a Redis client and its agents) may not: each entry also
//! records its [`Signature`] — the name and the `type_name`s of the argument and return types —
//! and its 64-bit [`Signature::fingerprint`] travels with a remote task, so an agent refuses a
//! task whose function has another signature in its own build instead of misreading its bytes.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{Bytes, Outcome};

/// One registered function. Made by [`register!`](crate::register); not for direct use.
#[doc(hidden)]
pub struct Entry {
    name: fn() -> &'static str,
    signature: fn() -> Signature,
    call: fn(Bytes) -> Outcome,
}

impl Entry {
    #[doc(hidden)]
    pub const fn new(
        name: fn() -> &'static str,
        signature: fn() -> Signature,
        call: fn(Bytes) -> Outcome,
    ) -> Entry {
        Entry {
            name,
            signature,
            call,
        }
    }
}

/// What a registered function is, as far as a program can tell at run time: its name and the
/// `type_name`s of its argument and return types (for a fallible function, the `Result`).
///
/// `type_name` is not a layout: two builds that changed a struct's fields under the same name
/// agree on it. It catches a renamed, retyped or missing function; the fingerprint is for
/// telling builds apart, not a security boundary.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The registry name (`type_name` of the function item).
    pub name: &'static str,
    /// `type_name` of the argument.
    pub arg: &'static str,
    /// `type_name` of the return value.
    pub ret: &'static str,
}

impl Signature {
    /// A 64-bit FNV-1a hash of the three names, the same in every build that has the same
    /// signature (for the same compiler: `type_name`'s spelling is not promised across Rust
    /// releases, which makes builds mismatch, never match wrongly).
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [self.name, self.arg, self.ret] {
            for &byte in part.as_bytes().iter().chain(&[0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fn {}({}) -> {}", self.name, self.arg, self.ret)
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
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// fn parse(s: String) -> Result<u32, String> { s.parse().map_err(|e| format!("{e}")) }
/// futurepool_procs::register!(square, parse);
///
/// fn main() {
///     futurepool_procs::init();
///     let pool = futurepool_procs::ProcessPool::new(1).unwrap();
///     assert_eq!(pool.submit(square, 3).unwrap().result(), Ok(&9));
///     let bad = pool.submit_fallible(parse, "x".to_string()).unwrap();
///     assert!(bad.exception().unwrap().raised().unwrap().contains("invalid digit"));
/// }
/// ```
#[macro_export]
macro_rules! register {
    ($($f:path),+ $(,)?) => {$(
        $crate::__private::inventory::submit! {
            $crate::__private::Entry::new(
                || $crate::__private::name_of(&$f),
                || $crate::__private::signature_of(&$f),
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

/// The [`Signature`] of a function item.
#[doc(hidden)]
pub fn signature_of<F, A, R>(f: &F) -> Signature
where
    F: Fn(A) -> R,
{
    Signature {
        name: name_of(f),
        arg: std::any::type_name::<A>(),
        ret: std::any::type_name::<R>(),
    }
}

/// Decodes the argument, runs `f` catching a panic, encodes the result.
#[doc(hidden)]
pub fn call<F, A, R>(f: &F, bytes: Bytes) -> Outcome
where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    // The encoded argument is given up: a large one is freed (or becomes the argument) before
    // the call.
    let decoded = crate::codec::decode_owned(bytes);
    let arg: A = match decoded {
        Ok(a) => a,
        Err(e) => return Outcome::BadArgument(e.to_string()),
    };
    match panic::catch_unwind(AssertUnwindSafe(|| f(arg))) {
        Ok(r) => match crate::wire::Bytes::encode_owned(r) {
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

type Call = fn(Bytes) -> Outcome;

/// Name → (signature, function), built once per process.
fn table() -> &'static HashMap<&'static str, (Signature, Call)> {
    static TABLE: OnceLock<HashMap<&'static str, (Signature, Call)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        inventory::iter::<Entry>
            .into_iter()
            .map(|e| ((e.name)(), ((e.signature)(), e.call)))
            .collect()
    })
}

/// Runs the registered function `name` on `arg`.
pub(crate) fn run(name: &str, arg: Bytes) -> Outcome {
    match table().get(name) {
        Some((_, call)) => call(arg),
        None => Outcome::UnknownTask(name.to_string()),
    }
}

/// `true` if `name` is registered in this executable.
pub(crate) fn is_registered(name: &str) -> bool {
    table().contains_key(name)
}

/// The signature `name` is registered with in this executable, if it is.
#[doc(hidden)]
pub fn signature(name: &str) -> Option<Signature> {
    table().get(name).map(|(signature, _)| *signature)
}

/// The fingerprint of this executable's whole registry: every registered [`Signature`], in
/// name order, hashed together. Two builds with the same value register the same functions
/// with the same types.
#[doc(hidden)]
pub fn fingerprint() -> u64 {
    let mut signatures: Vec<&Signature> = table().values().map(|(s, _)| s).collect();
    signatures.sort_unstable_by_key(|s| s.name);
    signatures.iter().fold(0xcbf2_9ce4_8422_2325, |hash, s| {
        (hash ^ s.fingerprint()).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }

    fn parse(s: String) -> Result<u32, String> {
        s.parse().map_err(|e| format!("{e}"))
    }

    #[test]
    fn a_signature_names_the_function_and_its_types() {
        let s = signature_of(&square);
        assert!(s.name.ends_with("::square"), "{s}");
        assert_eq!((s.arg, s.ret), ("u64", "u64"));
        let p = signature_of(&parse);
        assert_eq!(p.arg, "alloc::string::String");
        assert!(p.ret.starts_with("core::result::Result<u32, "), "{p}");
        assert!(p.to_string().starts_with("fn "), "{p}");
    }

    #[test]
    fn fingerprints_differ_when_any_part_differs() {
        let s = signature_of(&square);
        assert_eq!(s.fingerprint(), signature_of(&square).fingerprint());
        let retyped = Signature { ret: "u32", ..s };
        let renamed = Signature {
            name: "other::square",
            ..s
        };
        // The separator keeps "ab" + "c" apart from "a" + "bc".
        let shifted = Signature {
            name: "a",
            arg: "bc",
            ret: "",
        };
        let shifted2 = Signature {
            name: "ab",
            arg: "c",
            ret: "",
        };
        assert_ne!(s.fingerprint(), retyped.fingerprint());
        assert_ne!(s.fingerprint(), renamed.fingerprint());
        assert_ne!(shifted.fingerprint(), shifted2.fingerprint());
    }
}
