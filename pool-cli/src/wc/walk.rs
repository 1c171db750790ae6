//! From operands to inputs: each operand in order, directories walked recursively in name
//! order (walkdir, following symbolic links, loops detected), file names filtered by `--glob`
//! (globset). In a walk only regular files are read; FIFOs, sockets and devices are reported
//! as skipped and never opened. An operand that is not a directory is read whatever it is, as
//! GNU `wc` reads it. Names stay `OsString`s from the command line to the output.

use std::ffi::{OsStr, OsString};
use std::fs::{self, FileType};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use globset::GlobMatcher;

use super::count::message;

/// Something to count.
#[derive(Debug)]
pub enum Source {
    /// Standard input: `-`, or no operand at all (then shown without a name).
    Stdin { named: bool },
    /// A file by name.
    File(PathBuf),
}

/// One entry of the output, in order.
#[derive(Debug)]
pub enum Entry {
    /// To be counted. `size` is its size if it is a regular file (`None` for anything else),
    /// as GNU sizes its columns.
    Input { source: Source, size: Option<u64> },
    /// An operand or walked path that cannot be counted: reported in its place, exit code 1.
    Failed { name: OsString, why: String },
    /// A failure described whole (`F:3: invalid zero-length file name`): reported in its
    /// place, exit code 1.
    Invalid { message: String },
    /// Found in a walk but not a regular file: reported, not counted, not a failure.
    Skipped { name: OsString, what: &'static str },
}

impl Entry {
    /// Counts as a file for the total line and the column width (a skipped entry does not).
    pub fn is_operand(&self) -> bool {
        !matches!(self, Entry::Skipped { .. })
    }
}

/// What kind of non-regular file this is, for the "skipped" report.
fn special(ft: &FileType) -> Option<&'static str> {
    if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else {
        None
    }
}

/// The name filter of `--glob`: against the file name, or against the path below the walked
/// directory when the pattern has a `/`.
#[derive(Debug)]
pub struct Filter {
    matchers: Vec<(GlobMatcher, bool)>,
}

impl Filter {
    pub fn new(patterns: &[String]) -> Result<Filter, String> {
        let matchers = patterns
            .iter()
            .map(|p| {
                let glob = globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| format!("--glob {p}: {e}"))?;
                Ok((glob.compile_matcher(), p.contains('/')))
            })
            .collect::<Result<_, String>>()?;
        Ok(Filter { matchers })
    }

    /// Whether `found`, under the walked directory `root`, passes.
    fn accepts(&self, root: &Path, found: &Path) -> bool {
        if self.matchers.is_empty() {
            return true;
        }
        let relative = found.strip_prefix(root).unwrap_or(found);
        self.matchers.iter().any(|(m, whole)| {
            if *whole {
                m.is_match(relative)
            } else {
                relative.file_name().is_some_and(|n| m.is_match(n))
            }
        })
    }
}

/// Expands one operand into entries, handed to `out` in order (as they are found, so that
/// counting starts while a large tree is still being walked).
pub fn expand(operand: &OsStr, filter: &Filter, out: &mut dyn FnMut(Entry)) {
    if operand.as_bytes() == b"-" {
        out(Entry::Input {
            source: Source::Stdin { named: true },
            size: stdin_size(),
        });
        return;
    }
    let path = Path::new(operand);
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            out(Entry::Failed {
                name: operand.to_os_string(),
                why: describe(&e),
            });
            return;
        }
    };
    if !meta.is_dir() {
        out(Entry::Input {
            source: Source::File(path.to_path_buf()),
            size: meta.is_file().then_some(meta.len()),
        });
        return;
    }
    walk(operand, filter, out);
}

/// Walks the directory `operand` in name order: an entry for each file that passes `filter`
/// and for each path that cannot be read.
fn walk(operand: &OsStr, filter: &Filter, out: &mut dyn FnMut(Entry)) {
    let path = Path::new(operand);
    // Siblings share their parent's path, so comparing whole paths is comparing names — as
    // `sort_by_file_name` does, without re-parsing each path for its file name per comparison.
    let walk = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()));
    for item in walk {
        let found = match item {
            Ok(entry) => walked(entry, path, filter),
            Err(e) => Some(walk_failure(operand, &e)),
        };
        if let Some(entry) = found {
            out(entry);
        }
    }
}

/// What a path the walk could not read is reported as.
fn walk_failure(operand: &OsStr, e: &walkdir::Error) -> Entry {
    let name = e
        .path()
        .map_or_else(|| operand.to_os_string(), |p| p.as_os_str().to_os_string());
    let why = match (e.loop_ancestor(), e.io_error()) {
        (Some(ancestor), _) => format!(
            "symbolic link loop (back to {})",
            super::quote::quote(ancestor.as_os_str().as_bytes())
        ),
        (None, Some(io)) => describe(io),
        (None, None) => e.to_string(),
    };
    Entry::Failed { name, why }
}

/// The entry for a path found under `root`: `None` for a directory or a name `filter`
/// rejects, a skipped entry for a special file, else the file with its size.
fn walked(entry: walkdir::DirEntry, root: &Path, filter: &Filter) -> Option<Entry> {
    let ft = entry.file_type();
    if ft.is_dir() || !filter.accepts(root, entry.path()) {
        return None;
    }
    if let Some(what) = special(&ft) {
        return Some(Entry::Skipped {
            name: entry.path().as_os_str().to_os_string(),
            what,
        });
    }
    // A regular file (a followed link reports its target's type). Its size sizes the
    // columns, as GNU's `stat` of every operand does.
    let size = match entry.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            return Some(Entry::Failed {
                name: entry.path().as_os_str().to_os_string(),
                why: e.io_error().map_or_else(|| e.to_string(), describe),
            })
        }
    };
    Some(Entry::Input {
        source: Source::File(entry.into_path()),
        size: Some(size),
    })
}

/// Standard input's size if it is a regular file (`wc < file`), as GNU's `fstat` sees it.
pub fn stdin_size() -> Option<u64> {
    use std::os::fd::AsFd;
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    let meta = fs::File::from(fd).metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

/// An error about a path, as GNU words it (a symbolic link loop named as such).
fn describe(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ELOOP) {
        "symbolic link loop".to_string()
    } else {
        message(e)
    }
}
