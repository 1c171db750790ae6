//! `pool fetch` end to end: the built binary against testkit's local server (well-behaved and
//! hostile endpoints), every run under a deadline that kills it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futurepool_testkit::command::output_within;
use futurepool_testkit::http::{pattern, refused_url, Blackhole, HttpServer, GZIP_TEXT, JSON_BODY};

/// Exit code, stdout, stderr of `pool` run with `args` (stdin empty unless given).
fn pool_with(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_pool")).args(args),
        stdin.map(str::as_bytes),
        Duration::from_secs(120),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pool(args: &[&str]) -> (i32, String, String) {
    pool_with(args, None)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pool-fetch-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn each_url_is_reported_and_bad_urls_do_not_stop_the_rest() {
    let s = HttpServer::start().unwrap();
    let urls = [
        s.url("/delay/50"),
        s.url("/status/404"),
        s.url("/bytes/100000"),
        s.url("/redirect-loop"),
        refused_url().unwrap(),
        "not a url".to_string(),
        "ftp://127.0.0.1/x".to_string(),
    ];
    let mut args = vec!["fetch", "-j", "4", "--max-redirects", "3"];
    args.extend(urls.iter().map(String::as_str));
    let (code, out, err) = pool(&args);
    assert_eq!(code, 1, "failed URLs make exit code 1, not 2: {err}");
    assert!(err.is_empty(), "{err}");
    let delay = format!("✅ {}: 200 OK (36 bytes, application/json", urls[0]);
    assert!(out.contains(&delay), "{out}");
    // Not a success, not a failure: shown without ✅.
    let missing = format!("   {}: 404 Not Found (0 bytes, text/plain", urls[1]);
    assert!(out.contains(&missing), "{out}");
    assert!(
        out.contains(&format!(
            "✅ {}: 200 OK (100000 bytes, application/octet-stream",
            urls[2]
        )),
        "{out}"
    );
    assert!(
        out.contains("/redirect-loop: too many redirects: more than 3 (--max-redirects)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("❌ {}: connection refused", urls[4])),
        "{out}"
    );
    assert!(
        out.contains("❌ not a url: bad URL: malformed URL"),
        "{out}"
    );
    assert!(
        out.contains("❌ ftp://127.0.0.1/x: bad URL: unsupported scheme `ftp`"),
        "{out}"
    );
    assert!(
        out.contains("7 URLs: 2 ok, 1 other status, 4 failed, 100036 bytes"),
        "{out}"
    );
}

/// A body that trickles one byte every 200 ms, and one that stalls after the headers, both
/// end at `--timeout` with an error that says so.
#[test]
fn trickling_and_stalled_bodies_end_at_the_timeout() {
    let s = HttpServer::start().unwrap();
    for path in ["/trickle/100", "/stall"] {
        let url = s.url(path);
        let start = Instant::now();
        let (code, out, _) = pool(&["fetch", "--timeout", "1", &url]);
        let took = start.elapsed();
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!(
                "❌ {url}: timeout: no complete response within 1 s (--timeout)"
            )),
            "{out}"
        );
        // The trickle alone would take 20 s; a wide margin for a loaded machine.
        assert!(took < Duration::from_secs(12), "{path} took {took:?}");
    }
}

#[test]
fn connect_timeout_is_separate_from_the_request_timeout() {
    let hole = Blackhole::start().unwrap();
    let start = Instant::now();
    let (code, out, _) = pool(&[
        "fetch",
        "--connect-timeout",
        "0.5",
        "--timeout",
        "60",
        &hole.url(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("connect timeout: no connection within 0.5 s (--connect-timeout)"),
        "{out}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn user_agent_and_headers_are_sent() {
    let s = HttpServer::start().unwrap();
    let dir = scratch("ua");
    let ua = dir.join("ua.txt");
    let (code, out, err) = pool(&["fetch", "-o", ua.to_str().unwrap(), &s.url("/ua")]);
    assert_eq!(code, 0, "{out}{err}");
    let expected = format!("pool/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(std::fs::read_to_string(&ua).unwrap(), expected);
    let (code, _, _) = pool(&[
        "fetch",
        "-A",
        "custom-agent/1.0",
        "-o",
        ua.to_str().unwrap(),
        &s.url("/ua"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&ua).unwrap(), "custom-agent/1.0");
    let headers = dir.join("headers.txt");
    let (code, _, _) = pool(&[
        "fetch",
        "-H",
        "X-Test: yes",
        "-H",
        "Accept: text/x-special",
        "-o",
        headers.to_str().unwrap(),
        &s.url("/headers"),
    ]);
    assert_eq!(code, 0);
    let got = std::fs::read_to_string(&headers).unwrap();
    assert!(got.contains("x-test: yes\n"), "{got}");
    assert!(got.contains("accept: text/x-special\n"), "{got}");
    assert!(got.contains(&format!("user-agent: {expected}\n")), "{got}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fail_makes_error_statuses_failures_and_retries_5xx() {
    let s = HttpServer::start().unwrap();
    let dir = scratch("fail");
    let (code, out, _) = pool(&["fetch", &s.url("/status/503")]);
    assert_eq!(code, 0, "without --fail a status is a response: {out}");
    assert!(!out.contains('✅'), "{out}");
    let (code, out, _) = pool(&[
        "fetch",
        "--fail",
        "--json",
        "--retries",
        "1",
        "--output-dir",
        dir.to_str().unwrap(),
        &s.url("/status/503"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"kind\":\"HTTP\""), "{out}");
    assert!(out.contains("503 Service Unavailable (--fail)"), "{out}");
    assert!(out.contains("\"attempts\":2"), "a 5xx is retried: {out}");
    assert!(
        files_in(&dir).is_empty(),
        "nothing saved: {:?}",
        files_in(&dir)
    );
    let (code, out, _) = pool(&["fetch", "--json", "--retries", "2", &s.url("/flaky/a")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\"status\":200") && out.contains("\"attempts\":2"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-O --output-dir`: bodies saved whole (plain, chunked, gzip-decoded, after redirects);
/// failed ones leave no file, partial or temporary.
#[test]
fn bodies_are_saved_whole_and_failures_leave_nothing() {
    let s = HttpServer::start().unwrap();
    let dir = scratch("save");
    let out_dir = dir.join("out");
    let (code, out, err) = pool(&[
        "fetch",
        "--timeout",
        "2",
        "--output-dir",
        out_dir.to_str().unwrap(),
        &s.url("/bytes/300000"),
        &s.url("/chunked/5000"),
        &s.url("/gzip"),
        &s.url("/files/a.txt"),
        &s.url("/redirect/2"),
        &s.url("/truncated"),
        &s.url("/stall"),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("5 ok, 2 failed"), "{out}");
    assert!(out.contains("/truncated: body: "), "{out}");
    assert!(out.contains("/stall: timeout: "), "{out}");
    assert_eq!(files_in(&out_dir), ["2", "300000", "5000", "a.txt", "gzip"]);
    assert_eq!(
        std::fs::read(out_dir.join("300000")).unwrap(),
        pattern(300000)
    );
    assert_eq!(std::fs::read(out_dir.join("5000")).unwrap(), pattern(5000));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("gzip")).unwrap(),
        GZIP_TEXT
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("a.txt")).unwrap(),
        "contents of a.txt\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("2")).unwrap(),
        JSON_BODY
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn final_url_and_content_type_are_reported() {
    let s = HttpServer::start().unwrap();
    let url = s.url("/redirect/2");
    let (code, out, _) = pool(&["fetch", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("✅ {url}: 200 OK (59 bytes, application/json, "))
            && out.contains(&format!("s) → {}\n", s.url("/json"))),
        "{out}"
    );
    let (code, out, _) = pool(&["fetch", "--json", &url]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("\"final_url\":\"{}\"", s.url("/json")))
            && out.contains("\"content_type\":\"application/json\""),
        "{out}"
    );
}

#[test]
fn https_to_a_plain_http_port_says_tls() {
    let s = HttpServer::start().unwrap();
    let url = s.url("/json").replacen("http://", "https://", 1);
    let (code, out, _) = pool(&["fetch", "--timeout", "10", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("❌ {url}: TLS: handshake failed: ")),
        "{out}"
    );
    assert!(out.contains("plain-http port"), "{out}");
}

#[test]
fn an_unresolvable_host_is_a_dns_error() {
    let (code, out, _) = pool(&["fetch", "--timeout", "60", "http://no-such-host.invalid/"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("❌ http://no-such-host.invalid/: DNS: cannot resolve `no-such-host.invalid`"),
        "{out}"
    );
}

#[test]
fn urls_from_a_file_and_stdin_and_the_per_host_limit() {
    let s = HttpServer::start().unwrap();
    let list: Vec<String> = (0..6).map(|_| s.url("/hold/150")).collect();
    let dir = scratch("input");
    let file = dir.join("urls.txt");
    std::fs::write(&file, format!("# a comment\n{}\n", list.join("\n"))).unwrap();
    let (code, out, _) = pool(&[
        "fetch",
        "-j",
        "6",
        "--per-host",
        "2",
        "-i",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("6 URLs: 6 ok"), "{out}");
    let max = s.max_in_flight();
    assert!(max <= 2, "per-host limit exceeded: {max} at once");
    let (code, out, _) = pool_with(&["fetch"], Some(&format!("{}\n", s.url("/status/200"))));
    assert_eq!(code, 0);
    assert!(out.contains("1 URLs: 1 ok"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_exit_2() {
    for args in [
        &["fetch"][..],
        &["fetch", "-j", "0", "http://127.0.0.1:9/"],
        &["fetch", "--timeout", "x", "http://127.0.0.1:9/"],
        &["fetch", "--connect-timeout", "0", "http://127.0.0.1:9/"],
        &["fetch", "-i", "/nonexistent/list"],
        &["fetch", "-H", "no colon", "http://127.0.0.1:9/"],
        &["fetch", "-o", "a", "-o", "b", "http://127.0.0.1:9/"],
        &["fetch", "-A", "bad\u{1}agent", "http://127.0.0.1:9/"],
    ] {
        let (code, out, err) = pool(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.starts_with("pool: ") && err.lines().count() <= 2,
            "{err}"
        );
    }
}

/// In a real terminal (tmux), the progress bar never leaves copies of itself among the result
/// lines: the screen holds the result lines and the summary, nothing else.
#[test]
fn progress_bar_and_results_do_not_garble_a_terminal() {
    let s = HttpServer::start().unwrap();
    let dir = scratch("tmux");
    // One at a time, 300 ms each: the bar is drawn between every two results.
    let urls: Vec<String> = (0..6).map(|_| s.url("/delay/300")).collect();
    let command = format!(
        "'{}' fetch -j1 {}",
        env!("CARGO_BIN_EXE_pool"),
        urls.join(" ")
    );
    let Some(screen) =
        futurepool_testkit::terminal::screen_after(&command, &dir, Duration::from_secs(60))
    else {
        return;
    };
    let lines: Vec<&String> = screen.iter().filter(|l| !l.is_empty()).collect();
    let results = lines.iter().filter(|l| l.starts_with("✅ ")).count();
    assert_eq!(results, 6, "screen:\n{}", screen.join("\n"));
    assert_eq!(lines.len(), 7, "screen:\n{}", screen.join("\n"));
    assert!(
        lines[6].starts_with("6 URLs: 6 ok"),
        "screen:\n{}",
        screen.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
