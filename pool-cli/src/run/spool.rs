//! A job's captured output: an unlinked temporary file the job writes to directly, copied out
//! whole when the job ends. Memory stays flat whatever a job prints, and no pipe ties `pool` to
//! a background process that inherited the job's stdout.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::process::Stdio;

/// Captured output (or none, when it went straight through).
#[derive(Debug, Default)]
pub struct Spool {
    file: Option<File>,
}

/// Copy chunk size when lines must be prefixed (`--tag`).
const CHUNK: usize = 64 * 1024;

impl Spool {
    /// Nothing captured.
    pub fn none() -> Spool {
        Spool { file: None }
    }

    /// A fresh unlinked temporary file (in `$TMPDIR`).
    pub fn temp() -> io::Result<Spool> {
        Ok(Spool {
            file: Some(tempfile::tempfile()?),
        })
    }

    /// Output that arrived another way (a runner elsewhere), spooled the same way.
    pub fn from_bytes(bytes: &[u8]) -> io::Result<Spool> {
        let mut spool = Spool::temp()?;
        if let Some(f) = &mut spool.file {
            f.write_all(bytes)?;
        }
        Ok(spool)
    }

    /// A handle the child process writes to.
    pub fn stdio(&self) -> io::Result<Stdio> {
        match &self.file {
            Some(f) => Ok(Stdio::from(f.try_clone()?)),
            None => Ok(Stdio::inherit()),
        }
    }

    /// Bytes captured.
    pub fn len(&self) -> io::Result<u64> {
        match &self.file {
            Some(f) => Ok(f.metadata()?.len()),
            None => Ok(0),
        }
    }

    /// Copies everything captured to `out`, each line prefixed by `tag` if given.
    pub fn copy_to(&mut self, out: &mut dyn Write, tag: Option<&[u8]>) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(0))?;
        match tag {
            None => {
                io::copy(file, out)?;
            }
            Some(tag) => {
                let mut buf = vec![0; CHUNK];
                let mut at_line_start = true;
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    tag_lines(&buf[..n], tag, &mut at_line_start, out)?;
                }
            }
        }
        Ok(())
    }

    /// Everything captured, in memory (for `--json`).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        if let Some(file) = &mut self.file {
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    }
}

/// Writes `chunk` with `tag` before every line start; `at_line_start` carries across chunks.
pub fn tag_lines(
    chunk: &[u8],
    tag: &[u8],
    at_line_start: &mut bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    for line in chunk.split_inclusive(|&b| b == b'\n') {
        if *at_line_start {
            out.write_all(tag)?;
        }
        out.write_all(line)?;
        *at_line_start = line.ends_with(b"\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_whole_and_tagged() {
        let mut spool = Spool::from_bytes(b"one\ntwo\nthree").unwrap();
        assert_eq!(spool.len().unwrap(), 13);
        let mut out = Vec::new();
        spool.copy_to(&mut out, None).unwrap();
        assert_eq!(out, b"one\ntwo\nthree");
        let mut out = Vec::new();
        spool.copy_to(&mut out, Some(b"x\t")).unwrap();
        assert_eq!(out, b"x\tone\nx\ttwo\nx\tthree");
        assert_eq!(spool.read_all().unwrap(), b"one\ntwo\nthree");
    }

    #[test]
    fn tags_across_chunks() {
        let mut out = Vec::new();
        let mut start = true;
        tag_lines(b"ab", b"> ", &mut start, &mut out).unwrap();
        tag_lines(b"c\nd", b"> ", &mut start, &mut out).unwrap();
        assert_eq!(out, b"> abc\n> d");
    }
}
