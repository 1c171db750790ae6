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
//!
//! # Byte strings in bulk
//!
//! serde hands a `Vec<u8>` (or a `[u8]`) to the codec one byte at a time: encoding and
//! decoding 256 MiB that way took over half of a round trip's time. When the value itself is
//! a `Vec<u8>` or `[u8]`, [`encode`] and [`decode`] write and read postcard's own encoding of
//! it (the length as a varint, then the bytes) in one copy: the bytes are the same as
//! postcard's, so either side may take the other path. The same for `serde_bytes::ByteBuf`.
//! A value given up (an argument submitted, a result returned: `encode_owned`,
//! `decode_owned`) keeps its buffer: the varint is put in front of its bytes, or cut off
//! them, within memory already touched. Other byte-heavy types can use `serde_bytes`, which
//! postcard copies whole.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use serde_bytes::ByteBuf;

use crate::wire::Bytes;

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
    if let Some(bytes) = as_byte_slice(value) {
        return Ok(encode_bytes(bytes));
    }
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
    if typeid::of::<T>() == typeid::of::<Vec<u8>>() {
        let vec = decode_bytes(bytes).map_err(|e| {
            CodecError(format!(
                "cannot decode a `Vec<u8>` from {} bytes: {e}",
                bytes.len()
            ))
        })?;
        // SAFETY: `T` is `Vec<u8>` (the type ids are equal, and `Vec<u8>` has no lifetime that
        // the comparison could have erased), so this moves a `Vec<u8>` into a `T` bit for bit;
        // `ManuallyDrop` keeps the original from being dropped too.
        return Ok(unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(vec)) });
    }
    postcard::from_bytes(bytes).map_err(|e| {
        CodecError(format!(
            "cannot decode a `{}` from {} bytes: {e}",
            std::any::type_name::<T>(),
            bytes.len()
        ))
    })
}

/// [`encode`] of a value the caller gives up: a `Vec<u8>` becomes its own encoding in place
/// (the length's varint put in front of its bytes, a move within memory already touched)
/// instead of a copy into fresh memory.
pub(crate) fn encode_owned<T: Serialize>(value: T) -> Result<Vec<u8>, CodecError> {
    let mut vec: Vec<u8> = if typeid::of::<T>() == typeid::of::<Vec<u8>>() {
        // SAFETY: `T` is `Vec<u8>` (equal type ids; `Vec<u8>` has no lifetime to erase): a
        // move of the value, bit for bit; `ManuallyDrop` keeps the original from being dropped.
        unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(value)) }
    } else if typeid::of::<T>() == typeid::of::<ByteBuf>() {
        // SAFETY: `T` is `ByteBuf`, moved as above.
        let buf: ByteBuf = unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(value)) };
        buf.into_vec()
    } else {
        return encode(&value);
    };
    let prefix = varint(vec.len() as u64);
    vec.splice(0..0, prefix.iter().copied());
    Ok(vec)
}

/// [`decode`] of bytes the caller gives up: a `Vec<u8>` takes over their buffer when nobody
/// else holds it (see [`Bytes::into_vec`]).
pub(crate) fn decode_owned<T: DeserializeOwned>(bytes: Bytes) -> Result<T, CodecError> {
    let is_vec = typeid::of::<T>() == typeid::of::<Vec<u8>>();
    if !is_vec && typeid::of::<T>() != typeid::of::<ByteBuf>() {
        return decode(&bytes);
    }
    let (at, len) = bytes_len(&bytes).map_err(|e| {
        CodecError(format!(
            "cannot decode a `{}` from {} bytes: {e}",
            std::any::type_name::<T>(),
            bytes.len()
        ))
    })?;
    let vec = bytes.skip(at).truncate(len).into_vec();
    if is_vec {
        // SAFETY: `T` is `Vec<u8>`, as in `decode`.
        Ok(unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(vec)) })
    } else {
        // SAFETY: `T` is `ByteBuf` (equal type ids, no lifetime), moved in bit for bit.
        Ok(unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(ByteBuf::from(vec))) })
    }
}

/// `value` as a byte slice if it is a `Vec<u8>` or a `[u8]`.
fn as_byte_slice<T: ?Sized>(value: &T) -> Option<&[u8]> {
    if typeid::of::<T>() == typeid::of::<Vec<u8>>() {
        // SAFETY: `T` is `Vec<u8>` (equal type ids; `Vec<u8>` has no lifetime to erase), so
        // the reference is a `&Vec<u8>` with the same lifetime.
        let vec = unsafe { &*(value as *const T as *const Vec<u8>) };
        return Some(vec.as_slice());
    }
    if typeid::of::<T>() == typeid::of::<ByteBuf>() {
        // SAFETY: `T` is `ByteBuf` (equal type ids, no lifetime).
        let buf = unsafe { &*(value as *const T as *const ByteBuf) };
        return Some(buf.as_slice());
    }
    if typeid::of::<T>() == typeid::of::<[u8]>() {
        // SAFETY: `T` is `[u8]`, so `&T` is a `&[u8]` (the same fat pointer: address and
        // length), copied with its lifetime.
        return Some(unsafe { std::mem::transmute_copy::<&T, &[u8]>(&value) });
    }
    None
}

/// postcard's encoding of a byte string: its length as a varint (LEB128), then the bytes.
fn encode_bytes(bytes: &[u8]) -> Vec<u8> {
    let prefix = varint(bytes.len() as u64);
    let mut out = Vec::with_capacity(prefix.len() + bytes.len());
    out.extend_from_slice(&prefix);
    out.extend_from_slice(bytes);
    out
}

/// `n` as a LEB128 varint, as postcard writes a length.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

/// A byte string encoded by [`encode_bytes`] (or by postcard), checked (see [`bytes_len`]).
fn decode_bytes(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    let (at, len) = bytes_len(bytes)?;
    Ok(bytes[at..at + len].to_vec())
}

/// Where an encoded byte string's bytes start, and how many there are, checked: the varint
/// is at most 10 bytes and fits a `usize`, and the bytes it announces are there.
fn bytes_len(bytes: &[u8]) -> Result<(usize, usize), &'static str> {
    let mut len: u64 = 0;
    let mut at = 0;
    loop {
        let byte = *bytes.get(at).ok_or("the length is cut short")?;
        if at == 9 && byte > 1 {
            return Err("the length overflows");
        }
        len |= u64::from(byte & 0x7f) << (7 * at);
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let len = usize::try_from(len).map_err(|_| "the length overflows")?;
    if bytes.len() - at < len {
        return Err("fewer bytes than the length says");
    }
    Ok((at, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk path writes and reads exactly postcard's bytes, for every length class.
    #[test]
    fn bulk_bytes_are_postcards_bytes() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let ours = encode(&v).unwrap();
            assert_eq!(
                ours,
                postcard::to_allocvec(&v).unwrap(),
                "encode, {len} bytes"
            );
            assert_eq!(encode(v.as_slice()).unwrap(), ours, "slice, {len} bytes");
            let back: Vec<u8> = decode(&ours).unwrap();
            assert_eq!(back, v);
            assert_eq!(encode_owned(v.clone()).unwrap(), ours, "owned, {len} bytes");
            let owned: Vec<u8> = decode_owned(Bytes::new(ours.clone())).unwrap();
            assert_eq!(owned, v, "owned decode, {len} bytes");
            // A value inside a larger buffer (as in a received frame), shared or not.
            let mut framed = vec![9u8; 5];
            framed.extend_from_slice(&ours);
            framed.extend_from_slice(&[1, 2, 3]);
            let inner = Bytes::new(framed).skip(5).truncate(ours.len());
            let shared = inner.clone();
            assert_eq!(
                decode_owned::<Vec<u8>>(shared).unwrap(),
                v,
                "shared, {len} bytes"
            );
            assert_eq!(
                decode_owned::<Vec<u8>>(inner).unwrap(),
                v,
                "moved, {len} bytes"
            );
            // serde_bytes's ByteBuf: the same bytes, by every path.
            let buf = ByteBuf::from(v.clone());
            assert_eq!(encode(&buf).unwrap(), ours, "ByteBuf, {len} bytes");
            assert_eq!(
                encode_owned(buf.clone()).unwrap(),
                ours,
                "owned ByteBuf, {len} bytes"
            );
            assert_eq!(decode::<ByteBuf>(&ours).unwrap(), buf);
            assert_eq!(
                decode_owned::<ByteBuf>(Bytes::new(ours.clone())).unwrap(),
                buf
            );
            let theirs: Vec<u8> = postcard::from_bytes(&ours).unwrap();
            assert_eq!(theirs, v);
        }
    }

    #[test]
    fn hostile_bulk_bytes_are_refused_not_trusted() {
        for bad in [
            &[][..],
            &[0x80][..],
            &[5, 1, 2][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ][..],
        ] {
            let got = decode::<Vec<u8>>(bad);
            assert!(got.is_err(), "{bad:?} gave {got:?}");
            let got = decode_owned::<Vec<u8>>(Bytes::new(bad.to_vec()));
            assert!(got.is_err(), "owned: {bad:?} gave {got:?}");
            assert!(
                postcard::from_bytes::<Vec<u8>>(bad).is_err(),
                "{bad:?}: postcard agrees"
            );
        }
        // Other types still go through postcard.
        assert_eq!(
            decode::<(u8, String)>(&encode(&(3u8, "x")).unwrap()).unwrap(),
            (3, "x".into())
        );
    }
}
