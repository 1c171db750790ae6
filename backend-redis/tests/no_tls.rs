//! Built without the `tls` feature (`--no-default-features`): a `rediss://` URL or a private
//! CA is refused at connect with an error that names the feature, for clients and agents alike.
//! With the feature on (the default) this file is empty; CI runs it without.

#![cfg(not(feature = "tls"))]

use futurepool_redis::{Agent, AgentOptions, RedisPool};

#[test]
fn tls_without_the_feature_is_refused_naming_it() {
    let err = RedisPool::connect("rediss://127.0.0.1:1/")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`tls` feature"), "{err}");
    let err = RedisPool::builder("redis://127.0.0.1:1/")
        .tls_root_certificate(b"-----BEGIN CERTIFICATE-----".to_vec())
        .connect()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`tls` feature"), "{err}");
    let err = Agent::start("rediss://127.0.0.1:1/", AgentOptions::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`tls` feature"), "{err}");
}
