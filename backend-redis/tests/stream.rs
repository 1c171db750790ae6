//! The `stream` feature: `as_completed_stream` is re-exported by futurepool-redis and yields
//! each future once, in completion order (the core's own tests cover it on tokio and smol).

use std::time::Duration;

use futurepool_redis::{as_completed_stream, AsCompletedStream, Future};
use smol::stream::StreamExt;

#[test]
fn as_completed_stream_yields_in_completion_order() {
    futurepool_testkit::watchdog(Duration::from_secs(30), || {
        let (first, first_promise) = Future::<u32>::pending();
        let (second, second_promise) = Future::<u32>::pending();
        let stream: AsCompletedStream<Future<u32>> = as_completed_stream([first, second]);
        // The second completes first.
        second_promise.set_result(2).unwrap();
        let completer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            first_promise.set_result(1).unwrap();
        });
        let order: Vec<u32> = smol::block_on(stream.map(|f| *f.result().unwrap()).collect());
        completer.join().unwrap();
        assert_eq!(order, [2, 1]);
    });
}
