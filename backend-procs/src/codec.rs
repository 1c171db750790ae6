//! The one codec for arguments and results: what a registered function's argument and return
//! value become on their way between processes. Everything that encodes or decodes a task's
//! value goes through here, so the parent, the worker and sibling crates (the Redis backend)
//! always agree on the bytes.

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
    bincode::serialize(value).map_err(|e| CodecError(e.to_string()))
}

/// A `T` back from bytes made by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    bincode::deserialize(bytes).map_err(|e| CodecError(e.to_string()))
}
