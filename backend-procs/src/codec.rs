//! The one codec for arguments and results: what a registered function's argument and return
//! value become on their way between processes. Everything that encodes or decodes a task's
//! value goes through here, so the parent, the worker and sibling crates (the Redis backend)
//! always agree on the bytes.
//!
//! The codec is postcard (compact varints; byte strings — `serde_bytes` — copied whole). It
//! replaced bincode 1 when bincode was declared unmaintained (RUSTSEC-2025-0141, which covers
//! bincode 2 too); `futurepool-bench --codec` compares them: postcard costs a few hundred
//! nanoseconds more per small message (against a round trip of tens of microseconds) and
//! about a tenth less time on large ones.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value that did not encode or decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError(String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// `value` as bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|e| {
        CodecError(format!(
            "cannot encode a `{}`: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// A `T` back from bytes made by [`encode`].
///
/// The error names the type: postcard does not keep the message of a type's own
/// `serde::de::Error::custom` (it says "Serde Deserialization Error").
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|e| {
        CodecError(format!(
            "cannot decode a `{}` from {} bytes: {e}",
            std::any::type_name::<T>(),
            bytes.len()
        ))
    })
}
