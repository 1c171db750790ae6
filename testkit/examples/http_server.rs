//! Serves testkit's HTTP test server (well-behaved and hostile endpoints, see
//! `testkit/src/http.rs`) on 127.0.0.1 until killed, to try `pool fetch` by hand:
//! `cargo run -p futurepool-testkit --example http_server -- 18777`.

use std::net::SocketAddr;
use std::time::Duration;

use futurepool_testkit::http::HttpServer;

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|_| std::io::Error::other(format!("`{p}` is not a port number")))?,
        None => 0,
    };
    let server = HttpServer::bind(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(1),
    )?;
    println!("serving on {}", server.base());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
