//! Outside programs some tests need (`redis-server`, GNU `parallel`, `tmux`, `openssl`): a test
//! that cannot have one calls [`skip`] and returns. A skip is never silent and never a pass in
//! disguise: it writes one line, `skipped: <test>: no <tool> (<why>)`, straight to the
//! terminal (past the test harness's capture, so every run shows it; `cargo xtask test` counts
//! these lines), and when [`REQUIRE_ENV`] names the tool it fails the test instead, so a run
//! that is meant to have every tool (CI's full run) cannot pass without one.

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The environment variable listing the tools that must be present (comma-separated, or
/// `all`): a missing one fails the test that needs it instead of skipping it.
pub const REQUIRE_ENV: &str = "FUTUREPOOL_REQUIRE_TOOLS";

/// What every skip line starts with.
pub const SKIP_PREFIX: &str = "skipped: ";

/// Whether [`REQUIRE_ENV`] names `tool` (or says `all`).
pub fn required(tool: &str) -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|t| t == "all" || t == tool)
    })
}

/// Whether `program` can be started (with `arg`, such as `--version`, and its output ignored).
pub fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Reports that the calling test (or the part of it that needs `tool`) is skipped because
/// `tool` is missing; `why` says what was tried. One line per test and tool, however often it
/// is called. Panics instead when [`REQUIRE_ENV`] names `tool`.
pub fn skip(tool: &str, why: &str) {
    let test = test_name();
    if required(tool) {
        panic!("{test}: {tool} is required ({REQUIRE_ENV}) but missing: {why}");
    }
    static SEEN: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    let first = SEEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert((test.clone(), tool.to_string()));
    if first {
        // Straight to the file descriptor: `eprintln!` would be captured (and hidden) for a
        // test that passes.
        let line = format!("{SKIP_PREFIX}{test}: no {tool} ({why})\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// The running test's name: libtest names each test's thread after it (and [`crate::watchdog`]
/// passes the name on to its body's thread); "a test" where the thread has no such name.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "a test".to_string(),
    }
}
