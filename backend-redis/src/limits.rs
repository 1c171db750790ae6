//! What the server accepts: Redis refuses a bulk string (one argument) longer than its
//! `proto-max-bulk-len` (512 MiB by default) by closing the connection, which looks like a
//! broken pipe and was retried for ever. Clients and agents read the limit when they connect
//! and fail what would exceed it at once, with an error naming the size and the limit.

use redis::{Connection, Value};

/// Redis's default `proto-max-bulk-len`, assumed when the server does not say (`CONFIG GET`
/// needs a right an application user rarely has).
pub(crate) const DEFAULT_BULK_LIMIT: u64 = 512 << 20;

/// The server's `proto-max-bulk-len`, or [`DEFAULT_BULK_LIMIT`] if it cannot be read.
pub(crate) fn bulk_limit(conn: &mut Connection) -> u64 {
    match redis::cmd("CONFIG")
        .arg("GET")
        .arg("proto-max-bulk-len")
        .query::<Value>(conn)
    {
        Ok(value) => parse(&value).unwrap_or(DEFAULT_BULK_LIMIT),
        Err(e) => {
            log::debug!("futurepool-redis: cannot read proto-max-bulk-len ({e}); assuming 512 MiB");
            DEFAULT_BULK_LIMIT
        }
    }
}

/// The number in a `CONFIG GET` answer: a flat list (RESP2) or a map (RESP3).
fn parse(value: &Value) -> Option<u64> {
    let text = match value {
        Value::Array(items) => items.get(1)?,
        Value::Map(pairs) => &pairs.first()?.1,
        _ => return None,
    };
    match text {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// Why `size` bytes of `what` cannot go to Redis, or `None` if they can.
pub(crate) fn over(what: &str, size: usize, limit: u64) -> Option<String> {
    (size as u64 > limit).then(|| {
        format!(
            "{what} is {size} bytes, more than this Redis accepts in one value \
             (proto-max-bulk-len {limit} bytes)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_answers_parse_in_both_protocols() {
        let resp2 = Value::Array(vec![
            Value::BulkString(b"proto-max-bulk-len".to_vec()),
            Value::BulkString(b"2097152".to_vec()),
        ]);
        assert_eq!(parse(&resp2), Some(2 << 20));
        let resp3 = Value::Map(vec![(
            Value::BulkString(b"proto-max-bulk-len".to_vec()),
            Value::BulkString(b"1048576".to_vec()),
        )]);
        assert_eq!(parse(&resp3), Some(1 << 20));
        assert_eq!(parse(&Value::Array(vec![])), None);
    }

    #[test]
    fn the_error_names_size_and_limit() {
        assert_eq!(over("the argument", 10, 10), None);
        let why = over("the argument", 11, 10).unwrap();
        assert!(
            why.contains("11 bytes") && why.contains("10 bytes"),
            "{why}"
        );
    }
}
