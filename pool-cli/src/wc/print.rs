//! The output: GNU `wc`'s columns (lines, words, characters, bytes, longest line — those
//! selected, in that order), right-aligned to one width computed as GNU computes it, the name
//! quoted as GNU quotes it; or one JSON object per line. Errors go to stderr in their place.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use super::count::Counts;
use super::quote::{line_name, quote};
use super::walk::Entry;

/// Which columns to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    pub lines: bool,
    pub words: bool,
    pub chars: bool,
    pub bytes: bool,
    pub max_line: bool,
}

impl Columns {
    fn count(&self) -> usize {
        [
            self.lines,
            self.words,
            self.chars,
            self.bytes,
            self.max_line,
        ]
        .iter()
        .filter(|&&on| on)
        .count()
    }
}

/// GNU `wc`'s column width: the digits of the total size of the regular files among the
/// operands, at least 7 if any operand is not a regular file (stdin on a pipe, a FIFO, a
/// device; operands that could not be looked at do not count) — and 1 when there is a single
/// operand and a single column, or when names stream in from a non-regular `--files0-from`.
pub fn width(entries: &[Entry], columns: &Columns, names_streamed: bool) -> usize {
    let operands = entries.iter().filter(|e| e.is_operand());
    let single = operands.clone().count() == 1;
    if names_streamed || (single && columns.count() == 1) {
        return 1;
    }
    let (mut total, mut minimum) = (0u64, 1);
    for e in operands {
        if let Entry::Input { size, .. } = e {
            match size {
                Some(n) => total += n,
                None => minimum = 7,
            }
        }
    }
    total.to_string().len().max(minimum)
}

/// Writes count lines to stdout (buffered unless it is a terminal) and messages to stderr.
pub struct Printer {
    out: Box<dyn Write>,
    json: bool,
    width: usize,
    columns: Columns,
    /// Cleared when stdout's reader went away: the rest is counted but not printed.
    open: bool,
    /// Stdout is a terminal, where the progress bar is drawn too.
    terminal: bool,
}

impl Printer {
    pub fn new(json: bool, width: usize, columns: Columns) -> Printer {
        use std::io::IsTerminal;
        let stdout = io::stdout();
        let terminal = stdout.is_terminal();
        let out: Box<dyn Write> = if terminal {
            Box::new(stdout.lock())
        } else {
            Box::new(io::BufWriter::with_capacity(64 * 1024, stdout.lock()))
        };
        Printer {
            out,
            json,
            width,
            columns,
            open: true,
            terminal,
        }
    }

    /// Puts what was written on the terminal now (while the progress bar is off it); output
    /// into a pipe or file stays buffered.
    pub fn settle(&mut self) {
        if self.terminal {
            self.flush_quietly();
        }
    }

    /// One count line; `name` is `None` for stdin read without an operand.
    pub fn counts(&mut self, c: &Counts, name: Option<&OsStr>) -> io::Result<()> {
        if !self.open {
            return Ok(());
        }
        let mut line = Vec::with_capacity(64);
        let Columns {
            lines,
            words,
            chars,
            bytes,
            max_line,
        } = self.columns;
        let fields = [
            (lines, "lines", c.lines),
            (words, "words", c.words),
            (chars, "chars", c.chars),
            (bytes, "bytes", c.bytes),
            (max_line, "max_line_length", c.max_line),
        ];
        if self.json {
            // An object with `path` first, then the selected counts in column order.
            let mut object = serde_json::Map::new();
            let path = name.map(|n| n.to_string_lossy().into_owned());
            object.insert("path".into(), path.into());
            for (_, key, n) in fields.iter().filter(|f| f.0) {
                object.insert((*key).into(), (*n).into());
            }
            serde_json::to_writer(&mut line, &object).expect("plain data serializes");
            line.push(b'\n');
        } else {
            let w = self.width;
            for (i, (_, _, n)) in fields.iter().filter(|f| f.0).enumerate() {
                if i > 0 {
                    line.push(b' ');
                }
                line.extend_from_slice(format!("{n:>w$}").as_bytes());
            }
            if let Some(name) = name {
                line.push(b' ');
                line.extend_from_slice(&line_name(name.as_bytes()));
            }
            line.push(b'\n');
        }
        self.write(&line)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.out.write_all(bytes) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.open = false;
                Ok(())
            }
            other => other,
        }
    }

    /// `pool wc: NAME: why` on stderr, after what stdout holds so far.
    pub fn problem(&mut self, name: &OsStr, why: &str) {
        self.flush_quietly();
        eprintln!("pool wc: {}: {why}", quote(name.as_bytes()));
    }

    /// `pool wc: message` on stderr, after what stdout holds so far.
    pub fn message(&mut self, message: &str) {
        self.flush_quietly();
        eprintln!("pool wc: {message}");
    }

    fn flush_quietly(&mut self) {
        if self.open && self.out.flush().is_err() {
            self.open = false;
        }
    }

    pub fn finish(mut self) -> io::Result<()> {
        if !self.open {
            return Ok(());
        }
        match self.out.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(()),
        }
    }
}
