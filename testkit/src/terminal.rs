//! A real terminal for tests of what a program draws there (progress bars): a detached tmux
//! session runs a shell command, and the test reads the screen once the command is done.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::tools;

/// Runs `command` (a `sh -c` script) in a detached 120 × 40 tmux session and returns the
/// screen's lines, trailing spaces removed, once the command has ended; `None` after reporting
/// the test skipped where tmux is not installed ([`tools::skip`]). `scratch` is a directory the
/// test owns (a marker file is written there). Fails the test if the command takes longer than
/// `limit`.
pub fn screen_after(command: &str, scratch: &Path, limit: Duration) -> Option<Vec<String>> {
    if !tools::runs("tmux", "-V") {
        tools::skip("tmux", "a real terminal for the progress bar");
        return None;
    }
    let done = scratch.join("tmux-done");
    let _ = std::fs::remove_file(&done);
    let session = format!(
        "futurepool-test-{}-{}",
        std::process::id(),
        scratch
            .file_name()
            .map_or("x".into(), |n| n.to_string_lossy())
    );
    // The pane stays open after the command (`sleep`) so the screen can be read.
    let script = format!(
        "{command}; touch '{}'; sleep 60",
        done.display().to_string().replace('\'', r"'\''")
    );
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "120", "-y", "40"])
        .arg(script)
        .stdin(Stdio::null())
        .status()
        .expect("tmux new-session");
    assert!(status.success(), "tmux new-session failed");
    let _session = Session(session.clone());
    let screen = crate::watchdog(limit, {
        let session = session.clone();
        move || {
            while !done.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let out = Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &session])
                .output()
                .expect("tmux capture-pane");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    });
    Some(screen.lines().map(|l| l.trim_end().to_string()).collect())
}

/// A tmux session, killed on drop (also when the test fails).
struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
