//! `pool run`, run as a built binary, side by side with GNU parallel where it is installed (CI
//! installs it; without it the comparisons print a note and check only our own expectations,
//! which are GNU parallel 20221122's outputs written down).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futurepool_testkit::watchdog;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn run_with(mut cmd: Command, stdin: &[u8]) -> Out {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn pool_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pool"));
    cmd.arg("run").args(args);
    cmd
}

fn pool(args: &[&str]) -> Out {
    run_with(pool_cmd(args), b"")
}

fn pool_stdin(args: &[&str], stdin: &[u8]) -> Out {
    run_with(pool_cmd(args), stdin)
}

fn have_gnu_parallel() -> bool {
    let found = Command::new("parallel")
        .arg("--version")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU parallel"));
    if !found {
        futurepool_testkit::tools::skip(
            "parallel",
            "GNU parallel is not installed; the comparisons with it are skipped",
        );
    }
    found
}

/// GNU parallel with the same arguments (`--will-cite` keeps its notice quiet).
fn gnu(args: &[&str], stdin: &[u8]) -> Option<Out> {
    if !have_gnu_parallel() {
        return None;
    }
    let mut cmd = Command::new("parallel");
    // GNU parallel runs commands in the shell it was started from (found by walking up the
    // process tree) unless PARALLEL_SHELL names one; ours uses $SHELL, else /bin/sh. Pin
    // GNU parallel to ours so `echo -n` and the like mean the same on both sides whatever
    // the test runner's environment (CI runs without SHELL, under bash).
    cmd.env("PARALLEL_SHELL", our_shell());
    cmd.arg("--will-cite").args(args);
    Some(run_with(cmd, stdin))
}

/// The shell `pool run` uses here: `$PARALLEL_SHELL`, else `$SHELL`, the first that is an
/// absolute path to a POSIX-family shell, else `/bin/sh` (as `Shell::from_env` decides).
fn our_shell() -> PathBuf {
    ["PARALLEL_SHELL", "SHELL"]
        .into_iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|p| {
            p.is_absolute()
                && matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("sh" | "bash" | "dash" | "ksh" | "mksh" | "zsh" | "ash" | "yash")
                )
        })
        .unwrap_or_else(|| PathBuf::from("/bin/sh"))
}

/// `PARALLEL_SHELL` picks the shell, as in GNU parallel: `echo -n` means what that shell's
/// `echo` makes of it.
#[test]
fn parallel_shell_picks_the_shell() {
    // bash's echo takes every leading -n as an option, dash's only the first.
    for (shell, expected) in [("/bin/bash", "x"), ("/bin/dash", "-n x")] {
        if !Path::new(shell).exists() {
            continue;
        }
        let mut cmd = pool_cmd(&["echo {} {} x", ":::", "-n"]);
        cmd.env("PARALLEL_SHELL", shell).env("SHELL", "/bin/sh");
        let out = run_with(cmd, b"");
        assert_eq!((out.code, out.text()), (0, expected.to_string()), "{shell}");
    }
}

/// Runs both; asserts the same stdout and exit code, and that ours is `expected` (GNU
/// parallel 20221122's answer, so the check holds where it is not installed).
fn same_as_gnu(args: &[&str], stdin: &[u8], expected_stdout: &str, expected_code: i32) -> Out {
    let ours = pool_stdin(args, stdin);
    assert_eq!(
        (ours.code, ours.text().as_str()),
        (expected_code, expected_stdout),
        "pool run {args:?}: {}",
        ours.stderr
    );
    if let Some(theirs) = gnu(args, stdin) {
        assert_eq!(
            (ours.code, &ours.stdout),
            (theirs.code, &theirs.stdout),
            "pool run vs GNU parallel {args:?}:\nours: {}\ntheirs: {}\nstderr: {}",
            ours.text(),
            theirs.text(),
            theirs.stderr
        );
    }
    ours
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pool-run-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- inputs and replacement strings -----------------------------------------------------------

#[test]
fn input_sources_combine_as_in_gnu_parallel() {
    let dir = scratch("sources");
    let (f1, f2) = (dir.join("f1"), dir.join("f2"));
    std::fs::write(&f1, "a\nb\n").unwrap();
    std::fs::write(&f2, "1\n2\n3\n").unwrap();
    same_as_gnu(
        &["-k", "echo", ":::", "a", "b", ":::", "1", "2"],
        b"",
        "a 1\na 2\nb 1\nb 2\n",
        0,
    );
    same_as_gnu(
        &["-k", "echo", "::::", s(&f1), s(&f2)],
        b"",
        "a 1\na 2\na 3\nb 1\nb 2\nb 3\n",
        0,
    );
    same_as_gnu(
        &["-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"],
        b"",
        "a 1\nb 2\n",
        0,
    );
    same_as_gnu(
        &["-k", "echo", ":::", "a", "b", "::::+", s(&f2)],
        b"",
        "a 1\nb 2\n",
        0,
    );
    same_as_gnu(
        &["-k", "-a", s(&f1), "echo", ":::", "x", "y"],
        b"",
        "a x\na y\nb x\nb y\n",
        0,
    );
    same_as_gnu(
        &[
            "-k", "--link", "echo", ":::", "a", "b", "c", ":::", "1", "2",
        ],
        b"",
        "a 1\nb 2\nc 1\n",
        0,
    );
    same_as_gnu(
        &["-k", "echo", "::::", "-", ":::", "1"],
        b"a\nb\n",
        "a 1\nb 1\n",
        0,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replacement_strings_as_in_gnu_parallel() {
    same_as_gnu(
        &[
            "-k",
            "-j1",
            "echo",
            "{//}",
            "{/.}",
            "{.}",
            "{/}",
            "{%}",
            "{#}",
            ":::",
            "dir/x.tar.gz",
            ".bashrc",
            "a/b/",
            "file",
        ],
        b"",
        "dir x.tar dir/x.tar x.tar.gz 1 1\n.   .bashrc 1 2\na  a/b/  1 3\n. file file file 1 4\n",
        0,
    );
    same_as_gnu(
        &[
            "-k", "echo", "{2}", "{1/}", "{3}", "{-1}", ":::", "x/a", ":::", "b",
        ],
        b"",
        "b a b\n",
        0,
    );
    same_as_gnu(
        &[
            "-k", "--colsep", ",", "echo", "{2}", "{1}", "{3}", ":::", "x,y", ":::", "1,2",
        ],
        b"",
        "y x 1\n",
        0,
    );
    same_as_gnu(&["-k", "echo", "{x}", ":::", "a"], b"", "{x} a\n", 0);
    same_as_gnu(&["-k", "echo", "{#}", ":::", "a", "b"], b"", "1\n2\n", 0);
    same_as_gnu(
        &["-k", "echo {} has it\\'s {.}", ":::", "a b.c", "$HOME;x"],
        b"",
        "a b.c has it's a b\n$HOME;x has it's $HOME;x\n",
        0,
    );
}

/// Awkward values (quotes, `$`, globs, dashes, empty, slashes, tabs, non-ASCII) through every
/// replacement string: GNU parallel 20221122's output written down (so the check holds where it
/// is not installed), and against GNU parallel itself where it is.
#[test]
fn awkward_values_through_every_replacement_string_as_in_gnu_parallel() {
    let values = [
        "a b",
        "it's",
        "back\\slash",
        "$HOME",
        "*",
        "-n",
        "",
        "ü.tar.gz",
        "dir/sub/f.x",
        "\"q\"",
        "a;b",
        "~",
        ".hidden",
        "/",
        "x/",
        "tab\tt",
        "a..b",
        "..",
    ];
    // `echo -n -n -n` prints `-n -n` in dash, nothing in bash: the shell's echo, not ours.
    let echo_takes_one_n = {
        let out = Command::new(our_shell())
            .args(["-c", "echo -n -n x"])
            .output()
            .unwrap();
        out.stdout == b"-n x"
    };
    let expected = [
        ("echo {}", "a b\nit's\nback\\slash\n$HOME\n*\n\nü.tar.gz\ndir/sub/f.x\n\"q\"\na;b\n~\n.hidden\n/\nx/\ntab\tt\na..b\n..\n"),
        ("echo {.}", "a b\nit's\nback\\slash\n$HOME\n*\n\nü.tar\ndir/sub/f\n\"q\"\na;b\n~\n\n/\nx/\ntab\tt\na.\n.\n"),
        ("echo {/}", "a b\nit's\nback\\slash\n$HOME\n*\n\nü.tar.gz\nf.x\n\"q\"\na;b\n~\n.hidden\n\n\ntab\tt\na..b\n..\n"),
        ("echo {//}", ".\n.\n.\n.\n.\n.\n.\n.\ndir/sub\n.\n.\n.\n.\n/\n.\n.\n.\n.\n"),
        ("echo {/.}", "a b\nit's\nback\\slash\n$HOME\n*\n\nü.tar\nf\n\"q\"\na;b\n~\n\n\n\ntab\tt\na.\n.\n"),
        ("echo x{}x", "xa bx\nxit'sx\nxback\\slashx\nx$HOMEx\nx*x\nx-nx\nxx\nxü.tar.gzx\nxdir/sub/f.xx\nx\"q\"x\nxa;bx\nx~x\nx.hiddenx\nx/x\nxx/x\nxtab\ttx\nxa..bx\nx..x\n"),
        ("printf '%s|' {} {.} {/} {//} {/.}", "a b|a b|a b|.|a b|it's|it's|it's|.|it's|back\\slash|back\\slash|back\\slash|.|back\\slash|$HOME|$HOME|$HOME|.|$HOME|*|*|*|.|*|-n|-n|-n|.|-n||||.||ü.tar.gz|ü.tar|ü.tar.gz|.|ü.tar|dir/sub/f.x|dir/sub/f|f.x|dir/sub|f|\"q\"|\"q\"|\"q\"|.|\"q\"|a;b|a;b|a;b|.|a;b|~|~|~|.|~|.hidden||.hidden|.||/|/||/||x/|x/||.||tab\tt|tab\tt|tab\tt|.|tab\tt|a..b|a.|a..b|.|a.|..|.|..|.|.|"),
        ("printf '[%s]\\n'", "[a b]\n[it's]\n[back\\slash]\n[$HOME]\n[*]\n[-n]\n[]\n[ü.tar.gz]\n[dir/sub/f.x]\n[\"q\"]\n[a;b]\n[~]\n[.hidden]\n[/]\n[x/]\n[tab\tt]\n[a..b]\n[..]\n"),
        (
            "echo {1} {-1} {1/}",
            if echo_takes_one_n {
                "a b a b a b\nit's it's it's\nback\\slash back\\slash back\\slash\n$HOME $HOME $HOME\n* * *\n-n -n  \nü.tar.gz ü.tar.gz ü.tar.gz\ndir/sub/f.x dir/sub/f.x f.x\n\"q\" \"q\" \"q\"\na;b a;b a;b\n~ ~ ~\n.hidden .hidden .hidden\n/ / \nx/ x/ \ntab\tt tab\tt tab\tt\na..b a..b a..b\n.. .. ..\n"
            } else {
                "a b a b a b\nit's it's it's\nback\\slash back\\slash back\\slash\n$HOME $HOME $HOME\n* * *\n  \nü.tar.gz ü.tar.gz ü.tar.gz\ndir/sub/f.x dir/sub/f.x f.x\n\"q\" \"q\" \"q\"\na;b a;b a;b\n~ ~ ~\n.hidden .hidden .hidden\n/ / \nx/ x/ \ntab\tt tab\tt tab\tt\na..b a..b a..b\n.. .. ..\n"
            },
        ),
    ];
    for (template, expected) in expected {
        let mut args = vec!["-k", "-j1", template, ":::"];
        args.extend(values);
        let ours = pool(&args);
        assert_eq!(
            (ours.code, ours.text().as_str()),
            (0, expected),
            "{template}: {}",
            ours.stderr
        );
        if let Some(theirs) = gnu(&args, b"") {
            assert_eq!(
                (ours.code, ours.text()),
                (theirs.code, theirs.text()),
                "{template}"
            );
        }
    }
}

#[test]
fn stdin_inputs_are_bytes_lines_or_nul_separated() {
    same_as_gnu(&["-k", "echo", "x{}x"], b"a\n\nb\n", "xax\nxx\nxbx\n", 0);
    same_as_gnu(&["-k", "-0", "echo"], b"a\0b c\0", "a\nb c\n", 0);
    same_as_gnu(&["-k", "echo", "got"], b"x\ny z", "got x\ngot y z\n", 0);
    // Invalid UTF-8 passes through to the command and back.
    let out = pool_stdin(&["-k", "echo"], b"ok\na\xffb\n");
    assert_eq!(
        (out.code, &out.stdout[..]),
        (0, &b"ok\na\xffb\n"[..]),
        "{}",
        out.stderr
    );
    if let Some(theirs) = gnu(&["-k", "echo"], b"ok\na\xffb\n") {
        assert_eq!(theirs.stdout, out.stdout);
    }
}

/// `-j +N`, `-N`, `N%`, `0` and `N` as GNU parallel's manual defines them, from this machine's
/// CPU count (not compared with GNU parallel itself, which counts CPUs its own way).
#[test]
fn jobs_forms_follow_gnu_parallels_rules() {
    let cores = std::thread::available_parallelism().unwrap().get();
    // The highest job slot seen is the number of jobs at once.
    let slots = |j: &str, jobs: usize| -> usize {
        let inputs: Vec<String> = (0..jobs).map(|i| i.to_string()).collect();
        let mut args = vec!["-j", j, "sleep 0.3; echo {%}", ":::"];
        args.extend(inputs.iter().map(String::as_str));
        let out = pool(&args);
        assert_eq!(out.code, 0, "-j {j}: {}", out.stderr);
        let text = out.text();
        text.lines()
            .map(|l| {
                l.parse::<usize>()
                    .unwrap_or_else(|e| panic!("-j {j}: {e} in {l:?} of {text:?}: {}", out.stderr))
            })
            .max()
            .unwrap()
    };
    assert_eq!(slots("+1", (cores + 1) * 2), cores + 1);
    assert_eq!(slots("-1", cores * 2), (cores - 1).max(1));
    assert_eq!(slots("200%", cores * 4), cores * 2);
    assert_eq!(slots("0", 12), 12);
    assert_eq!(slots("3", 6), 3);
}

/// Regression: with more slots than inputs, the input reader could end (all inputs sent)
/// while the scheduler was still asking for more; the failed request was taken for the end of
/// the inputs and the run ended before starting the jobs already read (exit 0, no output).
#[test]
fn more_slots_than_inputs_runs_every_input() {
    for _ in 0..40 {
        let out = pool(&["-k", "-j", "1000", "echo", ":::", "a", "b", "c"]);
        assert_eq!(
            (out.code, out.text().as_str()),
            (0, "a\nb\nc\n"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn help_tells_placeholders_quoting_sources_and_exit_codes() {
    let out = run_with(
        {
            let mut c = Command::new(env!("CARGO_BIN_EXE_pool"));
            c.args(["run", "--help"]);
            c
        },
        b"",
    );
    assert_eq!(out.code, 0);
    let help = out.text();
    for needle in [
        "{//}",
        "{/.}",
        "{%}",
        "{N}",
        ":::+",
        "::::",
        "-0",
        "quoted",
        "Exit code",
        "255",
        "SIGHUP",
        "Examples",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn unsupported_or_bad_input_is_a_usage_error() {
    for args in [
        &[][..],
        &["echo", "{=", "s/a/b/", "=}", ":::", "x"],
        &["--halt", "never2", "echo"],
        &["--halt", "now,fail=0", "echo"],
        &["--timeout", "-1", "echo"],
        &["--timeout", "50%", "echo"],
        &["-j", "x", "echo"],
        &["-j", "0%", "echo"],
        &["--resume", "echo", ":::", "x"],
        &["--tag", "-u", "echo", ":::", "x"],
        &["echo", ":::+", "x"],
        &["echo", "::::"],
        &["--colsep", "(", "echo", ":::", "x"],
        &["--no-such-option", "echo"],
    ] {
        let out = pool(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(out.stderr.starts_with("pool: "), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    // An input file that cannot be opened is the user's to fix before any job runs: usage, as
    // an unreadable URL list is for `pool fetch -i`.
    let out = pool(&["echo", "::::", "/no/such/file"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("/no/such/file"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

// ---- running: shell, exit codes, halt, retries ------------------------------------------------

#[test]
fn commands_run_through_the_shell_as_in_gnu_parallel() {
    same_as_gnu(
        &["-k", "FOO={} printenv FOO", ":::", "bar"],
        b"",
        "bar\n",
        0,
    );
    same_as_gnu(
        &["-k", "type", ":::", "cd"],
        b"",
        "cd is a shell builtin\n",
        0,
    );
    same_as_gnu(&["-k", "command -v", ":::", "cd"], b"", "cd\n", 0);
    same_as_gnu(&["-k", "echo {} | tr a-z A-Z", ":::", "a"], b"", "A\n", 0);
    // The fast path (a plain program) sees what a shell would have given it.
    let ours = pool(&["-k", "printenv", ":::", "PWD", "SHLVL"]);
    let shell = our_shell().to_string_lossy().into_owned();
    let via_shell = Command::new(&shell)
        .args(["-c", "printenv PWD; printenv SHLVL"])
        .output()
        .unwrap();
    // `$SHELL -c 'a; b'` counts itself in SHLVL (it cannot exec the last command away).
    let expected: Vec<String> = String::from_utf8_lossy(&via_shell.stdout)
        .lines()
        .map(String::from)
        .collect();
    let got: Vec<String> = ours.text().lines().map(String::from).collect();
    assert_eq!(got.first(), expected.first(), "PWD");
    if shell.ends_with("bash") {
        let single = Command::new(&shell)
            .args(["-c", "printenv SHLVL"])
            .output()
            .unwrap();
        assert_eq!(
            got.get(1).map(String::as_str),
            String::from_utf8_lossy(&single.stdout).lines().next(),
            "SHLVL"
        );
    }
}

#[test]
fn command_not_found_is_127_named_and_logged() {
    let dir = scratch("notfound");
    let log = dir.join("log");
    for cmd in ["no-such-command-zz", "/no/such/dir/cmd"] {
        let out = pool(&["--joblog", s(&log), cmd, ":::", "x"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains(cmd), "{}", out.stderr);
        let text = std::fs::read_to_string(&log).unwrap();
        let row: Vec<&str> = text.lines().nth(1).unwrap().split('\t').collect();
        assert_eq!(row[6], "127", "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_code_counts_failed_jobs_capped_at_101() {
    let out = same_as_gnu(&["exit {}", ":::", "0", "1", "2", "0", "3"], b"", "", 3);
    assert!(
        out.stderr.contains("pool run: 3 of 5 jobs failed"),
        "{}",
        out.stderr
    );
    let many: Vec<String> = (0..105).map(|i| i.to_string()).collect();
    let mut args = vec!["-j", "8", "exit 1", ":::"];
    args.extend(many.iter().map(String::as_str));
    assert_eq!(pool(&args).code, 101);
}

#[test]
fn halt_as_in_gnu_parallel() {
    let job = "echo {}; exit {}";
    same_as_gnu(
        &[
            "-j1",
            "--halt",
            "now,fail=1",
            job,
            ":::",
            "0",
            "3",
            "0",
            "0",
        ],
        b"",
        "0\n3\n",
        3,
    );
    same_as_gnu(
        &["-j1", "--halt", "2", job, ":::", "0", "4", "0"],
        b"",
        "0\n4\n",
        4,
    );
    same_as_gnu(
        &[
            "-j1",
            "--halt",
            "soon,fail=2",
            job,
            ":::",
            "0",
            "3",
            "4",
            "0",
            "0",
        ],
        b"",
        "0\n3\n4\n",
        2,
    );
    same_as_gnu(
        &[
            "-j1",
            "--halt",
            "soon,fail=20%",
            job,
            ":::",
            "0",
            "0",
            "0",
            "0",
            "3",
            "0",
            "0",
            "0",
            "0",
            "0",
        ],
        b"",
        "0\n0\n0\n0\n3\n0\n0\n0\n0\n0\n",
        10,
    );
    same_as_gnu(
        &[
            "-j1",
            "--halt",
            "soon,fail=20%",
            job,
            ":::",
            "0",
            "3",
            "5",
            "0",
            "0",
            "0",
        ],
        b"",
        "0\n3\n5\n",
        34,
    );
    same_as_gnu(
        &[
            "-j1",
            "--halt",
            "now,success=1",
            job,
            ":::",
            "3",
            "0",
            "4",
            "0",
        ],
        b"",
        "3\n0\n",
        0,
    );
    same_as_gnu(
        &["-j1", "--halt", "soon,done=2", job, ":::", "0", "5", "0"],
        b"",
        "0\n5\n",
        1,
    );
    same_as_gnu(
        &[
            "--halt",
            "now,fail=1",
            "--timeout",
            "0.5",
            "sleep",
            ":::",
            "5",
        ],
        b"",
        "",
        255,
    );
}

#[test]
fn halt_now_kills_the_running_jobs_and_starts_no_more() {
    let dir = scratch("halt-now");
    let started = dir.join("started");
    // Each job first waits (up to 10 s) until both running jobs have written their line, so
    // that on a loaded machine the halt cannot come before the second job has started.
    let job = format!(
        "echo {{}} >> {f}; i=0; while [ $(wc -l < {f}) -lt 2 ] && [ $i -lt 1000 ]; do \
         sleep 0.01; i=$((i+1)); done; sleep {{}}; exit 1",
        f = s(&started)
    );
    let t0 = Instant::now();
    let out = pool(&[
        "-j2",
        "--halt",
        "now,fail=1",
        "--grace",
        "0.5",
        &job,
        ":::",
        "0.2",
        "30",
        "0",
        "0",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the 30 s job was not killed"
    );
    let started = std::fs::read_to_string(&started).unwrap();
    assert_eq!(
        started.lines().count(),
        2,
        "no job starts after the halt: {started}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retries_means_attempts_in_total() {
    let dir = scratch("retries");
    let count = dir.join("count");
    let job = format!("echo try >> {}; exit 1", s(&count));
    let out = pool(&["--retries", "3", &job, ":::", "x"]);
    assert_eq!(out.code, 1);
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    if let Some(theirs) = gnu(&["--retries", "3", &job, ":::", "x"], b"") {
        assert_eq!(theirs.code, 1);
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 6);
    }
    // A job that fails once then succeeds: printed once, exit 0.
    let flag = dir.join("flag");
    let job = format!(
        "test -e {0} || {{ touch {0}; exit 1; }}; echo ok {{}}",
        s(&flag)
    );
    let out = pool(&["--retries", "2", &job, ":::", "x"]);
    assert_eq!((out.code, out.text().as_str()), (0, "ok x\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- timeouts and stray processes -------------------------------------------------------------

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes (it only waits for its parent to reap it).
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn pids_in(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn kill_leftovers(pids: &[i32]) {
    for &pid in pids {
        if alive(pid) {
            // SAFETY: kill(2) with a pid this test's jobs wrote down; no memory involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let dir = scratch("timeout");
    let pids = dir.join("pids");
    let cmd = format!(
        "sleep 30 & echo $! >> {0}; echo $$ >> {0}; sleep 30 # {{}}",
        s(&pids)
    );
    watchdog(Duration::from_secs(60), move || {
        let out = pool(&[
            "--joblog",
            s(&dir.join("log")),
            "--timeout",
            "0.5",
            "--grace",
            "0.2",
            &cmd,
            ":::",
            "x",
        ]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("timed out"), "{}", out.stderr);
        let log = std::fs::read_to_string(dir.join("log")).unwrap();
        let row: Vec<&str> = log.lines().nth(1).unwrap().split('\t').collect();
        assert_eq!(
            (row[6], row[7]),
            ("-1", "15"),
            "GNU parallel's joblog for a timeout"
        );
        let pids = pids_in(&dir.join("pids"));
        assert_eq!(pids.len(), 2);
        std::thread::sleep(Duration::from_millis(300));
        let survivors: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        kill_leftovers(&pids);
        assert!(survivors.is_empty(), "survived the timeout: {survivors:?}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_background_child_holding_stdout_does_not_keep_us_waiting() {
    let dir = scratch("daemon");
    let pids = dir.join("pids");
    let cmd = format!("sleep 30 & echo $! > {}; echo started {{}}", s(&pids));
    watchdog(Duration::from_secs(60), move || {
        // Spooled output, and --line-buffer's pipes (as GNU parallel, which does not wait either).
        for mode in ["--group", "--line-buffer"] {
            let t0 = Instant::now();
            let out = pool(&[mode, &cmd, ":::", "x"]);
            let took = t0.elapsed();
            kill_leftovers(&pids_in(&pids));
            assert_eq!(
                (out.code, out.text().as_str()),
                (0, "started x\n"),
                "{mode}"
            );
            assert!(
                took < Duration::from_secs(20),
                "{mode}: waited for the background child"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

// ---- output -----------------------------------------------------------------------------------

#[test]
fn each_jobs_output_is_printed_whole() {
    let out = pool(&[
        "-j",
        "4",
        "for i in 1 2 3; do echo {}$i; sleep 0.01; done",
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]);
    assert_eq!(out.code, 0);
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12);
    for block in lines.chunks(3) {
        let job = &block[0][..1];
        assert_eq!(
            block,
            [format!("{job}1"), format!("{job}2"), format!("{job}3")],
            "{text}"
        );
    }
}

#[test]
fn keep_order_and_placeholders() {
    let out = pool(&[
        "-k",
        "-j",
        "3",
        "sleep 0.0{#}; echo {} {.} {/} {#}",
        ":::",
        "c/x.txt",
        "b",
        "a b.tar",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.text(),
        "c/x.txt c/x x.txt 1\nb b b 2\na b.tar a b a b.tar 3\n"
    );
}

/// With `-k`, finished jobs wait for a slow first one holding their spool files open; the
/// scheduler starts no job further than the open-file limit allows, so nothing fails (EMFILE).
#[test]
fn keep_order_behind_a_slow_job_stays_within_the_open_file_limit() {
    let script = format!(
        "ulimit -n 128 && {} run -k -j4 'test {{}} != 0 || sleep 1; echo {{}}' ::: $(seq 0 299)",
        env!("CARGO_BIN_EXE_pool")
    );
    let out = run_with(
        {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        },
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let expected: String = (0..300).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.text(), expected);
}

#[test]
fn tag_as_in_gnu_parallel() {
    let out = same_as_gnu(
        &[
            "-k",
            "--tag",
            "echo {}; echo err >&2",
            ":::",
            "a",
            "b c",
            ":::",
            "1",
        ],
        b"",
        "a 1\ta 1\nb c 1\tb c 1\n",
        0,
    );
    assert_eq!(out.stderr, "a 1\terr\nb c 1\terr\n");
}

#[test]
fn line_buffer_and_ungroup_print_as_jobs_go() {
    for mode in ["--line-buffer", "-u"] {
        let out = pool(&[
            "-j2",
            mode,
            "echo {}-1; sleep 0.2; echo {}-2",
            ":::",
            "a",
            "b",
        ]);
        assert_eq!(out.code, 0, "{mode}: {}", out.stderr);
        let text = out.text();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, ["a-1", "a-2", "b-1", "b-2"], "{mode}");
    }
    let out = pool(&["--line-buffer", "--tag", "printf 'x\\ny'", ":::", "a"]);
    assert_eq!(out.text(), "a\tx\na\ty");
}

#[test]
fn results_dir_as_in_gnu_parallel() {
    let dir = scratch("results");
    let tree = |root: &Path| -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    files.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let ours = dir.join("ours");
    let job = "echo {1}-{2}; echo e >&2";
    let out = pool(&["--results", s(&ours), job, ":::", "a/b", "c", ":::", "1"]);
    assert_eq!((out.code, out.text().as_str()), (0, ""), "{}", out.stderr);
    let got = tree(&ours);
    assert_eq!(
        got,
        [
            ("1/a\\_b/2/1/seq".to_string(), "1".to_string()),
            ("1/a\\_b/2/1/stderr".into(), "e\n".into()),
            ("1/a\\_b/2/1/stdout".into(), "a/b-1\n".into()),
            ("1/c/2/1/seq".into(), "2".into()),
            ("1/c/2/1/stderr".into(), "e\n".into()),
            ("1/c/2/1/stdout".into(), "c-1\n".into()),
        ]
    );
    let theirs = dir.join("theirs");
    if let Some(out) = gnu(
        &["--results", s(&theirs), job, ":::", "a/b", "c", ":::", "1"],
        b"",
    ) {
        assert_eq!(out.code, 0);
        assert_eq!(tree(&theirs), got);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn joblog_has_gnu_parallels_columns() {
    let dir = scratch("joblog");
    let log = dir.join("log.tsv");
    let out = pool(&[
        "--joblog",
        s(&log),
        "-k",
        "echo {}; exit {}",
        ":::",
        "0",
        "3",
    ]);
    assert_eq!(out.code, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], "2");
    assert_eq!(rows[1][6], "3", "exit value");
    assert_eq!(rows[1][5], "2", "bytes received");
    assert_eq!(rows[1][8], "echo 3; exit 3");
    assert_eq!(
        rows[1][3].len(),
        10,
        "GNU's %10.3f runtime: {:?}",
        rows[1][3]
    );
    assert!(
        rows[0][2].parse::<f64>().unwrap() > 1.0e9,
        "start time in epoch seconds"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The joblog's columns other than the times, against GNU parallel's for the same jobs
/// (exit codes, a signal, a missing command, a timeout).
#[test]
fn joblog_matches_gnu_parallels() {
    let dir = scratch("joblog-gnu");
    let rows = |log: &Path| -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(log).unwrap();
        let mut rows: Vec<Vec<String>> = text
            .lines()
            .skip(1)
            .map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                [0, 1, 4, 5, 6, 7, 8]
                    .iter()
                    .map(|&i| c[i].to_string())
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    };
    let args = |log: &Path| -> Vec<String> {
        [
            "-j2",
            "--timeout",
            "1",
            "--joblog",
            s(log),
            "eval",
            ":::",
            "echo hi",
            "exit 3",
            "kill -9 $$",
            "no-such-command-zz",
            "sleep 9",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let ours_log = dir.join("ours");
    let ours_args = args(&ours_log);
    let out = pool(&ours_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 4, "{}", out.stderr);
    let ours = rows(&ours_log);
    let col =
        |seq: &str, i: usize| -> String { ours.iter().find(|r| r[0] == seq).unwrap()[i].clone() };
    assert_eq!(
        (col("1", 3), col("1", 4)),
        ("3".into(), "0".into()),
        "echo hi: 3 bytes"
    );
    assert_eq!(col("2", 4), "3");
    assert_eq!((col("3", 4), col("3", 5)), ("0".into(), "9".into()));
    assert_eq!(col("4", 4), "127");
    assert_eq!((col("5", 4), col("5", 5)), ("-1".into(), "15".into()));
    let theirs_log = dir.join("theirs");
    let theirs_args = args(&theirs_log);
    if let Some(theirs) = gnu(
        &theirs_args.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    ) {
        assert_eq!(theirs.code, 4, "{}", theirs.stderr);
        assert_eq!(ours, rows(&theirs_log));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same sequence of runs with `--resume`/`--resume-failed` as GNU parallel: which jobs run
/// again, what they print, the exit codes.
#[test]
fn resume_and_resume_failed_as_in_gnu_parallel() {
    let dir = scratch("resume");
    let flag = dir.join("fixed");
    let job = format!("echo {{}}; test {{}} != b || test -e {}", s(&flag));
    let steps = |log: &Path, runner: &dyn Fn(&[&str]) -> Out| -> Vec<(i32, String)> {
        let _ = std::fs::remove_file(&flag);
        let _ = std::fs::remove_file(log);
        let mut seen = Vec::new();
        let base = ["-k", "-j1", "--joblog", s(log)];
        let run = |extra: &[&str]| {
            let mut args: Vec<&str> = base.to_vec();
            args.extend_from_slice(extra);
            args.extend([job.as_str(), ":::", "a", "b", "c"]);
            let out = runner(&args);
            (out.code, out.text())
        };
        seen.push(run(&[]));
        seen.push(run(&["--resume"]));
        seen.push(run(&["--resume-failed"]));
        std::fs::write(&flag, "").unwrap();
        seen.push(run(&["--resume-failed"]));
        seen.push(run(&["--resume-failed"]));
        seen
    };
    let ours = steps(&dir.join("ours.log"), &|a| pool(a));
    let expected = [(1, "a\nb\nc\n"), (0, ""), (1, "b\n"), (0, "b\n"), (0, "")];
    let ours_ref: Vec<(i32, &str)> = ours.iter().map(|(c, o)| (*c, o.as_str())).collect();
    assert_eq!(ours_ref, expected);
    if have_gnu_parallel() {
        let theirs = steps(&dir.join("theirs.log"), &|a| gnu(a, b"").unwrap());
        assert_eq!(ours, theirs);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_is_one_object_per_job() {
    let out = pool(&["-k", "--json", "echo {}; exit {}", ":::", "0", "2"]);
    assert_eq!(out.code, 1);
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0]
            .starts_with("{\"seq\":1,\"input\":\"0\",\"command\":\"echo 0; exit 0\",\"exit\":0,"),
        "{text}"
    );
    assert!(
        lines[1].contains("\"exit\":2") && lines[1].contains("\"stdout\":\"2\\n\""),
        "{text}"
    );
}

#[test]
fn dry_run_prints_quoted_commands() {
    let out = pool(&["--dry-run", "convert {} {.}.png", ":::", "a.jpg", "b c.jpg"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.text(),
        "convert a.jpg a.png\nconvert 'b c.jpg' 'b c'.png\n"
    );
}

/// 300 MB from one job: spooled to a file and copied out, never held in memory.
#[test]
fn memory_stays_flat_whatever_a_job_prints() {
    watchdog(Duration::from_secs(120), || {
        #[allow(clippy::zombie_processes)] // reaped by wait4 below, which also gives its rusage
        let mut child = pool_cmd(&["head -c 300000000 /dev/zero # {}", ":::", "x"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        assert_eq!(total, 300_000_000);
        let mut status = 0;
        // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child, not yet reaped (`Child` was never waited); both
        // pointers are to locals that outlive the call.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(pid, child.id() as i32);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        // ru_maxrss: the largest of pool and the jobs it waited for, in KiB.
        let peak_mib = usage.ru_maxrss / 1024;
        assert!(peak_mib < 64, "peak RSS of pool run: {peak_mib} MiB");
    });
}

// ---- signals and a closed stdout --------------------------------------------------------------

/// Starts `pool run` (or GNU parallel) in its own session, and so its own process group, as a
/// terminal's foreground job is: a signal to the group is what Ctrl-C sends.
fn start_group(program: &str, args: &[&str]) -> std::process::Child {
    let mut cmd = Command::new(program);
    if program == "parallel" {
        cmd.arg("--will-cite");
    } else {
        cmd.arg("run");
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    in_own_session(&mut cmd);
    cmd.spawn().unwrap()
}

fn in_own_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2), which
    // is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
}

fn wait_for_lines(path: &Path, n: usize) {
    let t0 = Instant::now();
    while pids_in(path).len() < n {
        assert!(t0.elapsed() < Duration::from_secs(30), "jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: kill(2) on the process group of a child this test started.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// Ctrl-C (SIGINT to the foreground process group) and SIGTERM to `pool` alone: every job's
/// process group is stopped, nothing survives, the joblog is finished, exit 255 (GNU's code).
#[test]
fn sigint_and_sigterm_stop_every_job() {
    let programs: Vec<&str> = if have_gnu_parallel() {
        vec![env!("CARGO_BIN_EXE_pool"), "parallel"]
    } else {
        vec![env!("CARGO_BIN_EXE_pool")]
    };
    for program in programs {
        for (signal, to_group) in [(libc::SIGINT, true), (libc::SIGTERM, false)] {
            let dir = scratch(&format!("sig{signal}-{}", program.len()));
            let pids = dir.join("pids");
            let log = dir.join("log");
            let job = format!("sleep 30 & echo $! $$ >> {}; wait # {{}}", s(&pids));
            let child = start_group(
                program,
                &["-j2", "--joblog", s(&log), &job, ":::", "1", "2", "3", "4"],
            );
            let ours = program != "parallel";
            watchdog(Duration::from_secs(60), move || {
                wait_for_lines(&pids, 4);
                if to_group {
                    signal_group(child.id(), signal);
                } else {
                    // SAFETY: kill(2) on our child's pid.
                    unsafe {
                        libc::kill(child.id() as i32, signal);
                    }
                }
                let out = child.wait_with_output().unwrap();
                let all = pids_in(&pids);
                // Signals take a moment to land on a loaded machine: give ours up to 10 s (GNU
                // parallel, which may leave some, 300 ms as before).
                let grace = if ours { 10_000 } else { 300 };
                let gone_by = std::time::Instant::now() + Duration::from_millis(grace);
                let mut survivors: Vec<i32> = all.iter().copied().filter(|&p| alive(p)).collect();
                while !survivors.is_empty() && std::time::Instant::now() < gone_by {
                    std::thread::sleep(Duration::from_millis(50));
                    survivors.retain(|&p| alive(p));
                }
                kill_leftovers(&all);
                if ours {
                    assert!(
                        survivors.is_empty(),
                        "signal {signal}: survivors {survivors:?}"
                    );
                } else if !survivors.is_empty() {
                    // GNU parallel's own kill sequence is not what this test checks.
                    eprintln!("note: GNU parallel left {survivors:?} after signal {signal}");
                }
                assert_eq!(out.status.code(), Some(255), "{program} {signal}");
                if ours {
                    let log = std::fs::read_to_string(&log).unwrap();
                    assert_eq!(log.lines().count(), 3, "header + the 2 stopped jobs: {log}");
                    for row in log.lines().skip(1) {
                        let cols: Vec<&str> = row.split('\t').collect();
                        assert_eq!(cols[7], signal.to_string(), "{row}");
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
            });
        }
    }
}

/// Ctrl-C while stdin (still open) has no more inputs to give: the run stops at once.
#[test]
fn ctrl_c_while_waiting_for_more_input() {
    let dir = scratch("int-stdin");
    let pids = dir.join("pids");
    let job = format!("echo $$ >> {}; sleep 30 # {{}}", s(&pids));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pool"));
    cmd.args(["run", "-j4", &job])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    in_own_session(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a\nb\n").unwrap();
    watchdog(Duration::from_secs(60), move || {
        wait_for_lines(&pids, 2);
        signal_group(child.id(), libc::SIGINT);
        let status = child.wait().unwrap();
        drop(stdin);
        assert_eq!(status.code(), Some(255));
        let all = pids_in(&pids);
        std::thread::sleep(Duration::from_millis(300));
        let survivors: Vec<i32> = all.iter().copied().filter(|&p| alive(p)).collect();
        kill_leftovers(&all);
        assert!(survivors.is_empty(), "{survivors:?}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A job that ignores the first signal is killed by the second Ctrl-C, not after --grace.
#[test]
fn a_second_ctrl_c_kills_at_once() {
    let dir = scratch("second-int");
    let pids = dir.join("pids");
    let job = format!("trap '' INT; echo $$ >> {}; sleep 30 # {{}}", s(&pids));
    let child = start_group(
        env!("CARGO_BIN_EXE_pool"),
        &["--grace", "100", &job, ":::", "1"],
    );
    watchdog(Duration::from_secs(60), move || {
        wait_for_lines(&pids, 1);
        let t0 = Instant::now();
        signal_group(child.id(), libc::SIGINT);
        std::thread::sleep(Duration::from_millis(300));
        signal_group(child.id(), libc::SIGINT);
        let out = child.wait_with_output().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(50), "waited for --grace");
        assert_eq!(out.status.code(), Some(255));
        let all = pids_in(&pids);
        let survivors: Vec<i32> = all.iter().copied().filter(|&p| alive(p)).collect();
        kill_leftovers(&all);
        assert!(survivors.is_empty(), "{survivors:?}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

fn stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('T')
    })
}

/// Ctrl-Z stops the jobs with `pool` (they are in their own process groups, which the
/// terminal's SIGTSTP does not reach); `fg` (SIGCONT) resumes them.
#[test]
fn ctrl_z_suspends_the_jobs_and_fg_resumes_them() {
    let dir = scratch("tstp");
    let pids = dir.join("pids");
    let job = format!("echo $$ >> {}; sleep 1.5; echo done {{}}", s(&pids));
    let child = start_group(
        env!("CARGO_BIN_EXE_pool"),
        &["-k", "-j2", &job, ":::", "a", "b"],
    );
    watchdog(Duration::from_secs(60), move || {
        wait_for_lines(&pids, 2);
        signal_group(child.id(), libc::SIGTSTP);
        let jobs = pids_in(&pids);
        let t0 = Instant::now();
        while !(stopped(child.id() as i32) && jobs.iter().all(|&p| stopped(p))) {
            assert!(t0.elapsed() < Duration::from_secs(20), "not all stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Well past the jobs' 1.5 s: still there, still stopped.
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            jobs.iter().all(|&p| stopped(p)),
            "a job went on while suspended"
        );
        signal_group(child.id(), libc::SIGCONT);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done a\ndone b\n");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// SIGHUP: no new jobs, the running one finishes and is printed.
#[test]
fn sighup_lets_running_jobs_finish() {
    let dir = scratch("hup");
    let started = dir.join("started");
    let job = format!("echo $$ >> {}; sleep 1; echo done {{}}", s(&started));
    let child = start_group(
        env!("CARGO_BIN_EXE_pool"),
        &["-j1", &job, ":::", "a", "b", "c"],
    );
    watchdog(Duration::from_secs(60), move || {
        wait_for_lines(&started, 1);
        // SAFETY: kill(2) on our child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGHUP);
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done a\n");
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(pids_in(&started).len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `nohup pool run …`: a SIGHUP ignored when pool started stays ignored — every job runs.
#[test]
fn an_ignored_sighup_stays_ignored() {
    let dir = scratch("nohup");
    let started = dir.join("started");
    let job = format!("echo $$ >> {}; sleep 0.5; echo done {{}}", s(&started));
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "trap '' HUP; exec \"$0\" \"$@\""])
        .args([
            env!("CARGO_BIN_EXE_pool"),
            "run",
            "-k",
            "-j1",
            &job,
            ":::",
            "a",
            "b",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    watchdog(Duration::from_secs(60), move || {
        wait_for_lines(&started, 1);
        // SAFETY: kill(2) on our child's pid (sh exec'd pool, same pid).
        unsafe {
            libc::kill(child.id() as i32, libc::SIGHUP);
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done a\ndone b\n");
        assert_eq!(out.status.code(), Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `pool run … | head -1`: once stdout is closed, no new jobs, the running ones ended, quiet.
#[test]
fn closed_stdout_stops_the_run_quietly() {
    let dir = scratch("epipe");
    let started = dir.join("started");
    let job = format!("echo $$ >> {}; echo {{}}; sleep 0.2", s(&started));
    let inputs: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let mut args = vec!["-k", "-j2", job.as_str(), ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let mut child = pool_cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    watchdog(Duration::from_secs(60), move || {
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 2];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
        let ran = pids_in(&started).len();
        assert!(ran < 50, "{ran} of 100 jobs ran after stdout closed");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

// ---- the progress bar in a terminal -----------------------------------------------------------

/// In a real terminal (tmux), the bar never leaves copies of itself between output lines.
#[test]
fn progress_bar_and_output_do_not_garble() {
    if !futurepool_testkit::tools::runs("tmux", "-V") {
        futurepool_testkit::tools::skip("tmux", "a real terminal for the progress bar");
        return;
    }
    let dir = scratch("tmux");
    let done = dir.join("done");
    let session = format!("pool-run-test-{}", std::process::id());
    let script = format!(
        "{} run -j2 'sleep 0.2; echo line{{}}' ::: 1 2 3 4 5 6 7 8; touch {}; sleep 30",
        env!("CARGO_BIN_EXE_pool"),
        s(&done)
    );
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "40",
            &script,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let result = watchdog(Duration::from_secs(60), {
        let done = done.clone();
        let session = session.clone();
        move || {
            while !done.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let out = Command::new("tmux")
                .args(["capture-pane", "-p", "-t", &session])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    });
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &session])
        .status();
    let lines: Vec<&str> = result.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    let expected: Vec<String> = (1..=8).map(|i| format!("line{i}")).collect();
    assert_eq!(sorted, expected, "screen:\n{result}");
    let _ = std::fs::remove_dir_all(&dir);
}
