//! What a run leaves behind besides the jobs' output: the joblog (GNU parallel's columns, read
//! back for `--resume`/`--resume-failed`), `--results DIR` (GNU parallel's layout) and the
//! `--json` lines (serde_json).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;

use super::job::{Finished, JobSpec};

/// A report file that cannot be read or written.
#[derive(Debug)]
pub struct ReportError {
    path: PathBuf,
    err: io::Error,
}

impl ReportError {
    fn at(path: &Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
        move |err| ReportError {
            path: path.to_path_buf(),
            err,
        }
    }
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.err)
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.err)
    }
}

/// The joblog's header line.
const HEADER: &[u8] =
    b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n";

/// `--resume` (skip every job in the joblog) or `--resume-failed` (skip the ones that
/// succeeded, run the failed ones again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    All,
    Failed,
}

/// The joblog being written.
#[derive(Debug)]
pub struct Joblog {
    path: PathBuf,
    file: File,
}

impl Joblog {
    /// Creates (or, resuming, appends to) the joblog; returns it with the sequence numbers to
    /// skip.
    pub fn open(
        path: &Path,
        resume: Option<Resume>,
    ) -> Result<(Joblog, HashSet<usize>), ReportError> {
        let done = match resume {
            Some(_) if path.exists() => read_done(path)?,
            _ => HashMap::new(),
        };
        let mut file = match resume {
            Some(_) => OpenOptions::new().create(true).append(true).open(path),
            None => File::create(path),
        }
        .map_err(ReportError::at(path))?;
        let empty = file.metadata().map_err(ReportError::at(path))?.len() == 0;
        if empty {
            file.write_all(HEADER).map_err(ReportError::at(path))?;
        }
        let skip = done
            .into_iter()
            .filter(|&(_, ok)| resume == Some(Resume::All) || ok)
            .map(|(seq, _)| seq)
            .collect();
        Ok((
            Joblog {
                path: path.to_path_buf(),
                file,
            },
            skip,
        ))
    }

    /// One line for a finished job.
    pub fn write(&mut self, job: &JobSpec, finished: &Finished) -> Result<(), ReportError> {
        let start = finished
            .start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let (exit, signal) = finished.exit_and_signal();
        let mut line = format!(
            "{}\t:\t{:.3}\t{:>10.3}\t0\t{}\t{}\t{}\t",
            job.seq,
            start,
            finished.runtime.as_secs_f64(),
            finished.stdout_len,
            exit,
            signal,
        )
        .into_bytes();
        line.extend_from_slice(&job.command);
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(ReportError::at(&self.path))
    }
}

/// Sequence numbers in a joblog, each with whether that job succeeded (its last line wins).
fn read_done(path: &Path) -> Result<HashMap<usize, bool>, ReportError> {
    let file = File::open(path).map_err(ReportError::at(path))?;
    let mut done = HashMap::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(ReportError::at(path))?;
        let cols: Vec<&[u8]> = line.splitn(9, |&b| b == b'\t').collect();
        let number = |i: usize| -> Option<i64> {
            std::str::from_utf8(cols.get(i)?).ok()?.trim().parse().ok()
        };
        if let (Some(seq), Some(exit), Some(signal)) = (number(0), number(6), number(7)) {
            if seq > 0 {
                done.insert(seq as usize, exit == 0 && signal == 0);
            }
        }
    }
    Ok(done)
}

/// `--results DIR`: `DIR/1/<value 1>/2/<value 2>/{seq,stdout,stderr}` as GNU parallel writes
/// them (in a value, `\` becomes `\\` and `/` becomes `\_`).
pub fn write_results(
    dir: &Path,
    job: &JobSpec,
    finished: &mut Finished,
) -> Result<(), ReportError> {
    let mut path = dir.to_path_buf();
    for (i, value) in job.values.iter().enumerate() {
        let mut escaped = Vec::with_capacity(value.len());
        for &b in value {
            match b {
                b'\\' => escaped.extend_from_slice(b"\\\\"),
                b'/' => escaped.extend_from_slice(b"\\_"),
                b => escaped.push(b),
            }
        }
        path.push((i + 1).to_string());
        path.push(OsStr::from_bytes(&escaped));
    }
    fs::create_dir_all(&path).map_err(ReportError::at(&path))?;
    let write = |name: &str, f: &mut dyn FnMut(&mut File) -> io::Result<()>| {
        let file_path = path.join(name);
        let mut file = File::create(&file_path).map_err(ReportError::at(&file_path))?;
        f(&mut file).map_err(ReportError::at(&file_path))
    };
    write("seq", &mut |f| write!(f, "{}", job.seq))?;
    write("stdout", &mut |f| finished.stdout.copy_to(f, None))?;
    write("stderr", &mut |f| finished.stderr.copy_to(f, None))
}

/// One `--json` line.
#[derive(Serialize)]
struct JsonJob {
    seq: usize,
    input: String,
    command: String,
    exit: i32,
    signal: i32,
    timed_out: bool,
    runtime: f64,
    stdout: String,
    stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<Vec<String>>,
}

/// The `--json` line for a finished job (non-UTF-8 bytes shown as U+FFFD).
pub fn json_line(job: &JobSpec, finished: &mut Finished) -> io::Result<Vec<u8>> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (exit, signal) = finished.exit_and_signal();
    let record = JsonJob {
        seq: job.seq,
        input: lossy(&job.values.join(&b' ')),
        command: lossy(&job.command),
        exit,
        signal,
        timed_out: finished.timed_out,
        runtime: (finished.runtime.as_secs_f64() * 1000.0).round() / 1000.0,
        stdout: lossy(&finished.stdout.read_all()?),
        stderr: lossy(&finished.stderr.read_all()?),
        args: (job.values.len() > 1).then(|| job.values.iter().map(|v| lossy(v)).collect()),
    };
    let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}
