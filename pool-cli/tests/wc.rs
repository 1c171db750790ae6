//! `pool wc` end to end against GNU `wc` (`LC_ALL=C.UTF-8`): counts, columns, widths, order and
//! quoting byte for byte, on awkward files, special files and awkward names, stdin, `-` and
//! `--files0-from`; every run under a deadline that kills it.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futurepool_testkit::command::output_within;

/// What a run printed.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: i32,
    out: Vec<u8>,
    /// stderr with the program's prefix (`pool wc: ` / `wc: `) removed.
    err: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

const LIMIT: Duration = Duration::from_secs(120);

fn finish(out: std::process::Output, prefix: &str) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        out: out.stdout,
        err: String::from_utf8_lossy(&out.stderr).replace(prefix, ""),
    }
}

/// `pool wc ARGS` with `stdin`.
fn ours<S: AsRef<OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pool"));
    cmd.arg("wc").args(args);
    finish(output_within(&mut cmd, stdin, LIMIT), "pool wc: ")
}

/// GNU `wc ARGS` with `stdin`, in C.UTF-8.
fn gnu<S: AsRef<OsStr>>(args: &[S], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new("wc");
    cmd.args(args).env("LC_ALL", "C.UTF-8");
    finish(output_within(&mut cmd, stdin, LIMIT), "wc: ")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pool-wc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tree of awkward files: every rule GNU wc has an opinion on.
fn wc_tree(name: &str) -> PathBuf {
    let dir = scratch(name);
    let files: &[(&str, &[u8])] = &[
        ("empty.txt", b""),
        ("no-newline.txt", b"no newline at the end"),
        ("crlf.txt", b"one\r\ntwo three\r\n"),
        ("nul.txt", b"a\0b \0 c\n"),
        ("control.txt", b"\x01\x02 word\x7f \x0b\x0ctail\n"),
        (
            "invalid.txt",
            b"\xff\xfe ok \xe2\x82 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 end\n",
        ),
        (
            "unicode.txt",
            "h\u{e9}llo w\u{f6}rld\u{a0}x\u{2028}y \u{65e5}\u{672c} \u{1F600}\u{3000}z\u{85}q\te\u{301}\u{200b}\n"
                .as_bytes(),
        ),
        ("tabs.txt", b"a\tbc\t\td\r\n1234567\t8\x0cxy\n"),
        ("long-line.txt", &[b'x'; 200_000]),
        ("sub/nested.txt", b"nested file\nwith two lines\n"),
        ("sub/other.md", b"# not a txt\n"),
    ];
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

/// The regular files under `dir`, in walk order (names sorted bytewise per directory).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort_by(|a, b| a.file_name().unwrap().cmp(b.file_name().unwrap()));
    let mut out = Vec::new();
    for p in entries {
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_walk_matches_gnu_wc_on_the_same_files_on_both_backends() {
    let dir = wc_tree("gnu");
    let files = files_under(&dir);
    assert_eq!(files.len(), 11);
    let mut gnu_args: Vec<OsString> = vec!["-lwmc".into()];
    gnu_args.extend(files.iter().map(|f| f.clone().into_os_string()));
    let expected = gnu(&gnu_args, None);
    assert_eq!(expected.code, 0);
    for backend in ["threads", "processes"] {
        let got = ours(
            &[
                OsStr::new("--backend"),
                OsStr::new(backend),
                dir.as_os_str(),
            ],
            None,
        );
        assert_eq!(got, expected, "{backend}:\n{}", got.text());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every column selection, in GNU's column order whatever the flags' order.
#[test]
fn column_flags_select_gnus_columns() {
    let dir = wc_tree("columns");
    let files = files_under(&dir);
    for flags in [
        &["-l"][..],
        &["-w"],
        &["-c"],
        &["-m"],
        &["-L"],
        &["-L", "-l"],
        &["-c", "-m"],
        &["-w", "-l", "-L"],
        &["-lwmcL"],
        &["--lines", "--max-line-length"],
    ] {
        let mut args: Vec<OsString> = flags.iter().map(OsString::from).collect();
        args.extend(files.iter().map(|f| f.clone().into_os_string()));
        assert_eq!(ours(&args, None), gnu(&args, None), "{flags:?}");
        // One file, one column: GNU prints at width 1.
        let single = [OsString::from(flags[0]), files[1].clone().into_os_string()];
        assert_eq!(
            ours(&single, None),
            gnu(&single, None),
            "{flags:?} on one file"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process backend sends files in batches (64 files or 4 MiB a call): several batches of
/// small files and one large file give exactly the threads backend's output, in walk order.
#[test]
fn process_batches_agree_with_threads() {
    let dir = scratch("batches");
    for i in 0..150 {
        let text = "word ".repeat(i % 17) + "\n" + &"ü\n".repeat(i % 5);
        std::fs::write(dir.join(format!("f{i:03}.txt")), text).unwrap();
    }
    std::fs::write(dir.join("big.txt"), "a b c\n".repeat(1 << 20)).unwrap();
    let threads = ours(&[dir.as_os_str()], None);
    assert_eq!(threads.code, 0, "{}", threads.err);
    let procs = ours(
        &[
            OsStr::new("--backend"),
            OsStr::new("processes"),
            OsStr::new("-j2"),
            dir.as_os_str(),
        ],
        None,
    );
    assert_eq!(procs, threads);
    assert_eq!(
        procs.text().lines().count(),
        152,
        "150 small files, big.txt and the total"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Output follows the operands, not completion: a large first file still comes first (and
/// `--completion-order` gives the same lines, in some order).
#[test]
fn output_is_in_operand_order() {
    let dir = scratch("order");
    let big = dir.join("big.txt");
    std::fs::write(&big, "x y\n".repeat(4 << 20)).unwrap();
    let small: Vec<PathBuf> = (0..20)
        .map(|i| {
            let p = dir.join(format!("s{i}.txt"));
            std::fs::write(&p, "s\n").unwrap();
            p
        })
        .collect();
    let mut args = vec![big.clone().into_os_string()];
    args.extend(small.iter().map(|p| p.clone().into_os_string()));
    let expected = gnu(&[&["-lwmc".into()][..], &args].concat(), None);
    assert_eq!(ours(&args, None), expected);
    args.insert(0, "--completion-order".into());
    let mut got: Vec<String> = ours(&args, None).text().lines().map(String::from).collect();
    let mut want: Vec<String> = expected
        .out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(got.pop(), want.pop(), "the total comes last");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Opens the FIFO for writing (blocking until a reader comes) and writes `data`.
fn feed_fifo(path: PathBuf, data: &'static [u8]) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all(data).unwrap();
    })
}

/// A walk reads regular files only: a FIFO (which would block forever), a socket and a
/// device (`/dev/null`, symlinked in) are reported as skipped, never opened.
#[test]
fn a_walk_skips_fifos_sockets_and_devices() {
    let dir = scratch("special");
    std::fs::write(dir.join("a.txt"), "one two\n").unwrap();
    mkfifo(&dir.join("fifo"));
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
    std::os::unix::fs::symlink("/dev/null", dir.join("null")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
    let start = Instant::now();
    let got = ours(&[dir.as_os_str()], None);
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(got.code, 0, "skipping is not a failure: {}", got.err);
    let a = dir.join("a.txt");
    assert_eq!(
        got.out,
        gnu(&[OsStr::new("-lwmc"), a.as_os_str()], None).out
    );
    let root = dir.display();
    for line in [
        format!("{root}/fifo: skipped: a FIFO, not a regular file"),
        format!("{root}/null: skipped: a character device, not a regular file"),
        format!("{root}/socket: skipped: a socket, not a regular file"),
        format!("{root}/zero: skipped: a character device, not a regular file"),
    ] {
        assert!(got.err.contains(&line), "{line:?} in:\n{}", got.err);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Named on the command line, a FIFO and a device are read, as GNU reads them (and make the
/// columns 7 wide, as GNU's do).
#[test]
fn a_fifo_or_device_named_is_read_as_gnu_reads_it() {
    let dir = scratch("named-fifo");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let a = dir.join("a.txt");
    std::fs::write(&a, "one two\n").unwrap();
    let args = [
        OsString::from("-lwmc"),
        fifo.clone().into_os_string(),
        "/dev/null".into(),
        a.into_os_string(),
    ];
    let writer = feed_fifo(fifo.clone(), b"through a fifo\n");
    let expected = gnu(&args, None);
    writer.join().unwrap();
    let writer = feed_fifo(fifo, b"through a fifo\n");
    let got = ours(&args[1..], None);
    writer.join().unwrap();
    assert_eq!(got, expected, "{}", got.text());
    assert!(
        got.text().starts_with("      1       3      15      15 "),
        "{}",
        got.text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names that are not UTF-8 and names with a newline: found and counted (walked and named),
/// printed as GNU prints them.
#[test]
fn awkward_names_are_counted_and_quoted_as_gnu_does() {
    let dir = scratch("names");
    let names: [&[u8]; 4] = [
        b"bad\xff\xfe.txt",
        b"new\nline.txt",
        b"it's here.txt",
        b"tab\tname",
    ];
    let mut paths: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let p = dir.join(OsStr::from_bytes(n));
            std::fs::write(&p, b"some words\n").unwrap();
            p
        })
        .collect();
    paths.sort_by(|a, b| a.file_name().unwrap().cmp(b.file_name().unwrap()));
    let mut args: Vec<OsString> = vec!["-lwmc".into()];
    args.extend(paths.iter().map(|p| p.clone().into_os_string()));
    let expected = gnu(&args, None);
    assert_eq!(expected.code, 0);
    assert_eq!(ours(&args[1..], None), expected, "named");
    assert_eq!(ours(&[dir.as_os_str()], None), expected, "walked");
    assert!(
        expected.text().contains("/new'$'\\n''line.txt'"),
        "{}",
        expected.text()
    );
    // A missing name that is not UTF-8 is reported with its bytes escaped.
    let missing = dir.join(OsStr::from_bytes(b"gone\xff"));
    let got = ours(&[missing.as_os_str()], None);
    assert_eq!(got.code, 1);
    assert_eq!(got.err, gnu(&[missing.as_os_str()], None).err);
    let _ = std::fs::remove_dir_all(&dir);
}

/// No operand and stdin not a terminal: stdin is counted, unnamed; `-` is stdin, named `-`;
/// stdin from a regular file sizes the columns by that file.
#[test]
fn stdin_and_dash_are_read_as_gnu_reads_them() {
    let text = "from stdin\nsecond line \u{e9}\n".as_bytes();
    let none: [&str; 0] = [];
    assert_eq!(ours(&none, Some(text)), gnu(&["-lwmc"], Some(text)));
    assert_eq!(ours(&["-l"], Some(text)), gnu(&["-l"], Some(text)));
    let dir = scratch("stdin");
    let a = dir.join("a.txt");
    std::fs::write(&a, "a file\n").unwrap();
    let args = [OsStr::new("-"), a.as_os_str()];
    assert_eq!(
        ours(&args, Some(text)),
        gnu(
            &[OsStr::new("-lwmc"), OsStr::new("-"), a.as_os_str()],
            Some(text)
        )
    );
    // stdin redirected from a regular file.
    let from_file = |program: &str, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::from(std::fs::File::open(&a).unwrap()))
            .stdout(Stdio::piped());
        futurepool_testkit::watchdog(LIMIT, move || cmd.output().unwrap().stdout)
    };
    assert_eq!(
        from_file(env!("CARGO_BIN_EXE_pool"), &["wc"]),
        from_file("wc", &["-lwmc"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files0_from_reads_nul_separated_names() {
    let dir = wc_tree("files0");
    let files = files_under(&dir);
    let mut list: Vec<u8> = Vec::new();
    for f in files.iter().take(4) {
        list.extend_from_slice(f.as_os_str().as_bytes());
        list.push(0);
    }
    list.extend_from_slice(b"/nonexistent/file\0\0");
    list.extend_from_slice(files[5].as_os_str().as_bytes());
    list.push(0);
    let list_file = dir.join("list0");
    std::fs::write(&list_file, &list).unwrap();
    let arg = OsString::from_vec(
        [
            b"--files0-from=".to_vec(),
            list_file.into_os_string().into_vec(),
        ]
        .concat(),
    );
    let from_file = [OsString::from("-lwmc"), arg.clone()];
    let got = ours(&from_file[1..], None);
    assert_eq!(got.code, 1);
    assert_eq!(got.out, gnu(&from_file, None).out);
    assert!(
        got.err
            .contains("/nonexistent/file: No such file or directory"),
        "{}",
        got.err
    );
    assert!(
        got.err.contains(":6: invalid zero-length file name"),
        "{}",
        got.err
    );
    // From stdin (a pipe): GNU streams the names and prints at width 1.
    let from_stdin = ["-lwmc", "--files0-from=-"];
    let got = ours(&from_stdin[1..], Some(&list));
    assert_eq!(got.out, gnu(&from_stdin, Some(&list)).out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn glob_and_problems_are_reported_per_path() {
    let dir = wc_tree("glob");
    let got = ours(
        &[OsStr::new("--glob"), OsStr::new("*.md"), dir.as_os_str()],
        None,
    );
    assert_eq!(got.code, 0);
    assert_eq!(got.text().lines().count(), 1, "{}", got.text());
    assert!(got.text().ends_with("sub/other.md\n"));
    let got = ours(
        &[
            OsStr::new("--glob"),
            OsStr::new("sub/*.txt"),
            dir.as_os_str(),
        ],
        None,
    );
    assert!(got.text().ends_with("sub/nested.txt\n"), "{}", got.text());
    assert_eq!(got.text().lines().count(), 1, "{}", got.text());

    std::os::unix::fs::symlink("loop", dir.join("loop")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    let missing = dir.join("missing.txt");
    let got = ours(&[missing.as_os_str(), dir.as_os_str()], None);
    assert_eq!(got.code, 1, "failures make exit code 1");
    assert!(
        got.err.contains("missing.txt: No such file or directory"),
        "{}",
        got.err
    );
    assert!(got.err.contains("loop: symbolic link loop"), "{}", got.err);
    assert!(
        got.err.contains("sub/up: symbolic link loop (back to "),
        "{}",
        got.err
    );
    let text = got.text();
    assert!(
        text.contains("nested.txt") && text.contains(" total"),
        "the rest were counted: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many `*` in a pattern against a long name: the old hand-written glob backtracked
/// combinatorially here; globset answers at once.
#[test]
fn a_glob_with_many_stars_does_not_backtrack() {
    let dir = scratch("stars");
    std::fs::write(dir.join("a".repeat(60)), "x\n").unwrap();
    let start = Instant::now();
    let got = ours(
        &[
            OsStr::new("--glob"),
            OsStr::new("*a*a*a*a*a*a*a*a*a*a*a*a*b"),
            dir.as_os_str(),
        ],
        None,
    );
    assert_eq!(got.code, 0, "{}", got.err);
    assert!(got.out.is_empty());
    assert!(start.elapsed() < Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_exit_2() {
    for args in [
        &["--files0-from=-", "x"][..],
        &["--files0-from=/nonexistent/list"],
        &["--glob", "a[", "."],
        &["-j", "0", "."],
        &["--completion-order", "--keep-order", "."],
    ] {
        let got = ours(args, None);
        assert_eq!(got.code, 2, "{args:?}: {}", got.err);
        assert!(got.out.is_empty());
        assert!(
            got.err.starts_with("pool: ") && got.err.lines().count() <= 2,
            "{}",
            got.err
        );
    }
}

/// The pids of `parent`'s children (from /proc).
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == parent {
            out.push(pid);
        }
    }
    out
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
}

/// SIGTERM to `pool wc --backend processes` while a worker counts (an endless `/dev/zero`)
/// leaves no worker running.
#[test]
fn sigterm_while_counting_leaves_no_worker() {
    futurepool_testkit::watchdog(Duration::from_secs(120), || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pool"))
            .args(["wc", "--backend", "processes", "-j1", "/dev/zero"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        let workers = loop {
            let w = children(pid);
            if !w.is_empty() || Instant::now() > deadline {
                break w;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!workers.is_empty(), "no worker process started");
        // Let the worker get into its read loop.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: `kill` has no memory effects; `pid` is our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while workers.iter().any(|&w| running(w)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<u32> = workers.iter().copied().filter(|&w| running(w)).collect();
        for &w in &left {
            // Do not leak it past the test: only a process still running our binary.
            let exe = std::fs::read_link(format!("/proc/{w}/exe")).ok();
            if exe.as_deref() == Some(Path::new(env!("CARGO_BIN_EXE_pool"))) {
                // SAFETY: `kill` has no memory effects; the pid runs `pool` (checked above).
                unsafe { libc::kill(w as i32, libc::SIGKILL) };
            }
        }
        assert!(
            left.is_empty(),
            "worker(s) {left:?} still running after pool wc got SIGTERM"
        );
    });
}

/// `--json`: one object per file with the selected counts, the total last; the same counts on
/// the process backend, `-L` included.
#[test]
fn json_has_the_selected_counts_on_both_backends() {
    let dir = scratch("json");
    let a = dir.join("a.txt");
    let b = dir.join("b.txt");
    std::fs::write(&a, "one two\n\u{65e5}\u{672c}\tx\n").unwrap();
    std::fs::write(&b, "three\n").unwrap();
    for backend in ["threads", "processes"] {
        let got = ours(
            &[
                OsStr::new("--json"),
                OsStr::new("-lwL"),
                OsStr::new("--backend"),
                OsStr::new(backend),
                a.as_os_str(),
                b.as_os_str(),
            ],
            None,
        );
        assert_eq!(got.code, 0, "{}", got.err);
        assert_eq!(
            got.text(),
            format!(
                "{{\"path\":\"{}\",\"lines\":2,\"words\":4,\"max_line_length\":9}}\n\
                 {{\"path\":\"{}\",\"lines\":1,\"words\":1,\"max_line_length\":5}}\n\
                 {{\"path\":\"total\",\"lines\":3,\"words\":5,\"max_line_length\":9}}\n",
                a.display(),
                b.display()
            ),
            "{backend}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Random mixes of ASCII, controls, multibyte characters (wide, combining, spaces,
/// unprintable) and invalid or cut sequences: every count, `-L` included, as GNU's.
#[test]
fn random_bytes_match_gnu_wc() {
    let pieces: [&[u8]; 24] = [
        b"a",
        b" ",
        b"\t",
        b"\n",
        b"\r",
        b"\x0b",
        b"\x0c",
        b"\x01",
        b"\x7f",
        b"\0",
        "\u{e9}".as_bytes(),
        "\u{65e5}".as_bytes(),
        "\u{a0}".as_bytes(),
        "\u{3000}".as_bytes(),
        "\u{2028}".as_bytes(),
        "\u{1F600}".as_bytes(),
        "\u{301}".as_bytes(),
        b"\xff",
        b"\xc3",
        b"\xe2\x82",
        b"\xf4\x90\x80\x80",
        b"\xed\xa0\x80",
        b"xyzw ",
        b"longer words here ",
    ];
    let dir = scratch("random");
    // A fixed xorshift sequence: the same files every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut args: Vec<OsString> = vec!["-lwmcL".into()];
    for k in 0..40 {
        let len = next() % 5000;
        let bytes: Vec<u8> = (0..len)
            .flat_map(|_| {
                pieces[(next() % pieces.len() as u64) as usize]
                    .iter()
                    .copied()
            })
            .collect();
        let path = dir.join(format!("r{k:02}"));
        std::fs::write(&path, bytes).unwrap();
        args.push(path.into_os_string());
    }
    let expected = gnu(&args, None);
    assert_eq!(expected.code, 0);
    assert_eq!(ours(&args, None), expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a real terminal (tmux), the progress bar never leaves copies of itself among the count
/// lines: the screen holds exactly what the same command prints into a pipe.
#[test]
fn progress_bar_and_counts_do_not_garble_a_terminal() {
    let dir = scratch("tmux");
    // One file at a time, each big enough that the bar is drawn between two count lines.
    let line = "the quick brown fox jumps over the lazy dog, ταχεία καφέ αλεπού\n";
    let body = line.repeat(8 * 1024 * 1024 / line.len());
    let mut files = Vec::new();
    for i in 0..6 {
        let path = dir.join(format!("f{i}.txt"));
        std::fs::write(&path, &body.as_bytes()[..body.len() - 2 * i]).unwrap();
        files.push(path.display().to_string());
    }
    let args = ["wc", "-j1"];
    let piped = output_within(
        Command::new(env!("CARGO_BIN_EXE_pool"))
            .args(args)
            .args(&files),
        None,
        LIMIT,
    );
    assert_eq!(piped.status.code(), Some(0));
    let expected: Vec<String> = String::from_utf8_lossy(&piped.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    assert_eq!(expected.len(), 7, "six files and the total");
    let command = format!(
        "'{}' {} {}",
        env!("CARGO_BIN_EXE_pool"),
        args.join(" "),
        files.join(" ")
    );
    let Some(screen) = futurepool_testkit::terminal::screen_after(&command, &dir, LIMIT) else {
        return;
    };
    let lines: Vec<String> = screen.into_iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, expected);
    let _ = std::fs::remove_dir_all(&dir);
}
