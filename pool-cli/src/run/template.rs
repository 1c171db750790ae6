//! The command template: GNU parallel's replacement strings, parsed once and rendered per job
//! into a shell command line (bytes, so non-UTF-8 inputs pass through).
//!
//! Replacement strings, as GNU parallel 20221122 defines them (`%Global::replace`):
//!
//! | string | value |
//! |---|---|
//! | `{}` | the input (every source's value, space-separated, each quoted) |
//! | `{.}` | without its extension: `s:\.[^/.]*$::` |
//! | `{/}` | basename: `s:.*/::` |
//! | `{//}` | dirname, as Perl's `File::Basename::dirname` |
//! | `{/.}` | basename without extension |
//! | `{#}` | the job's sequence number |
//! | `{%}` | the job slot (1..=jobs) |
//! | `{n}` `{n.}` `{n/}` `{n//}` `{n/.}` | the same on the n-th value (`-n` counts from the end) |
//!
//! Every substituted value is shell-quoted; a value that does not exist (`{3}` with two
//! sources) is nothing at all, as in GNU parallel. A template with no replacement string gets
//! `{}` appended. Perl expressions (`{= … =}`) are refused rather than run as literal text.

use std::fmt;

/// A template that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// No command words at all.
    Empty,
    /// A GNU parallel feature we do not implement (Perl expressions).
    Unsupported(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => {
                write!(
                    f,
                    "no command given (usage: pool run COMMAND... ::: INPUTS...)"
                )
            }
            TemplateError::Unsupported(what) => {
                write!(f, "{what} is not supported by pool run")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// Which value a replacement string takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// All values, space-separated.
    All,
    /// The n-th value (1-based); negative counts from the end.
    Nth(i64),
}

/// What a replacement string does to its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Whole,
    NoExt,
    Base,
    Dir,
    BaseNoExt,
}

/// One piece of the parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Value(Which, Transform),
    Seq,
    Slot,
}

/// A parsed command template.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What one job's command is made from.
#[derive(Debug, Clone, Copy)]
pub struct JobValues<'a> {
    /// The input values: one per source (or per column with `--colsep`).
    pub args: &'a [Vec<u8>],
    /// Sequence number, from 1.
    pub seq: usize,
    /// Job slot, from 1.
    pub slot: usize,
}

impl Template {
    /// Parses the command words (joined with spaces, as GNU parallel does).
    pub fn parse(words: &[Vec<u8>]) -> Result<Template, TemplateError> {
        if words.is_empty() || words.iter().all(|w| w.is_empty()) {
            return Err(TemplateError::Empty);
        }
        let text = words.join(&b' ');
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut rest = &text[..];
        let mut any = false;
        while let Some(open) = rest.iter().position(|&b| b == b'{') {
            literal.extend_from_slice(&rest[..open]);
            let tail = &rest[open..];
            if tail.starts_with(b"{=") {
                return Err(TemplateError::Unsupported(
                    "a Perl replacement string `{= … =}`".into(),
                ));
            }
            let close = tail.iter().position(|&b| b == b'}');
            match close.and_then(|c| parse_placeholder(&tail[1..c]).map(|p| (p, c))) {
                Some((piece, c)) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                    any = true;
                    rest = &tail[c + 1..];
                }
                None => {
                    literal.push(b'{');
                    rest = &tail[1..];
                }
            }
        }
        literal.extend_from_slice(rest);
        if !any {
            literal.push(b' ');
            pieces.push(Piece::Text(literal));
            pieces.push(Piece::Value(Which::All, Transform::Whole));
        } else if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The highest positional index used (`{3}` → 3), for `--colsep` checks and docs.
    #[cfg(test)]
    fn max_position(&self) -> i64 {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Value(Which::Nth(n), _) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The shell command line for one job.
    pub fn render(&self, job: JobValues<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Seq => out.extend_from_slice(job.seq.to_string().as_bytes()),
                Piece::Slot => out.extend_from_slice(job.slot.to_string().as_bytes()),
                Piece::Value(Which::All, t) => {
                    if job.args.is_empty() {
                        out.extend_from_slice(b"''");
                    }
                    for (i, arg) in job.args.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        shell_quote_into(&transform(arg, *t), &mut out);
                    }
                }
                Piece::Value(Which::Nth(n), t) => {
                    let len = job.args.len() as i64;
                    let index = if *n > 0 { n - 1 } else { len + n };
                    // A value that does not exist is nothing at all (not even `''`), as in
                    // GNU parallel.
                    if (0..len).contains(&index) {
                        shell_quote_into(&transform(&job.args[index as usize], *t), &mut out);
                    }
                }
            }
        }
        out
    }
}

/// `{…}`'s inside (without braces) as a piece, if it is a replacement string.
fn parse_placeholder(inner: &[u8]) -> Option<Piece> {
    match inner {
        b"#" => return Some(Piece::Seq),
        b"%" => return Some(Piece::Slot),
        _ => {}
    }
    let digits_end = inner
        .iter()
        .enumerate()
        .position(|(i, &b)| !(b.is_ascii_digit() || (i == 0 && b == b'-')))
        .unwrap_or(inner.len());
    let (number, op) = inner.split_at(digits_end);
    let which = if number.is_empty() {
        Which::All
    } else {
        let n: i64 = std::str::from_utf8(number).ok()?.parse().ok()?;
        if n == 0 {
            return None;
        }
        Which::Nth(n)
    };
    let transform = match op {
        b"" => Transform::Whole,
        b"." => Transform::NoExt,
        b"/" => Transform::Base,
        b"//" => Transform::Dir,
        b"/." => Transform::BaseNoExt,
        _ => return None,
    };
    Some(Piece::Value(which, transform))
}

fn transform(value: &[u8], t: Transform) -> Vec<u8> {
    match t {
        Transform::Whole => value.to_vec(),
        Transform::NoExt => no_ext(value).to_vec(),
        Transform::Base => base(value).to_vec(),
        Transform::Dir => dirname(value),
        Transform::BaseNoExt => no_ext(base(value)).to_vec(),
    }
}

/// `s:.*/::`
fn base(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'/') {
        Some(slash) => &v[slash + 1..],
        None => v,
    }
}

/// `s:\.[^/.]*$::` — the last dot, if no `/` follows it.
fn no_ext(v: &[u8]) -> &[u8] {
    match v.iter().rposition(|&b| b == b'.' || b == b'/') {
        Some(i) if v[i] == b'.' => &v[..i],
        _ => v,
    }
}

/// Perl's `File::Basename::dirname` on Unix.
fn dirname(v: &[u8]) -> Vec<u8> {
    let trim_slashes = |s: &[u8]| -> usize {
        let mut end = s.len();
        while end > 1 && s[end - 1] == b'/' {
            end -= 1;
        }
        end
    };
    let v = &v[..trim_slashes(v)];
    if v == b"/" {
        return b"/".to_vec();
    }
    match v.iter().rposition(|&b| b == b'/') {
        None => b".".to_vec(),
        Some(i) => {
            let head = &v[..=i];
            let end = trim_slashes(head);
            head[..end].to_vec()
        }
    }
}

/// Appends `s` quoted for a POSIX shell: bare when every byte is plainly safe, otherwise in
/// single quotes (a `'` inside becomes `'\''`). Non-UTF-8 bytes pass through inside the quotes.
pub fn shell_quote_into(s: &[u8], out: &mut Vec<u8>) {
    if !s.is_empty() && s.iter().all(|&b| safe_byte(b)) {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'\'');
    for &b in s {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

/// Bytes no POSIX shell gives a meaning to inside a word.
pub fn safe_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    fn render(template: &str, args: &[&str], seq: usize) -> String {
        let t = Template::parse(&words(template)).unwrap();
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        String::from_utf8(t.render(JobValues {
            args: &args,
            seq,
            slot: 2,
        }))
        .unwrap()
    }

    #[test]
    fn placeholders() {
        assert_eq!(render("echo {}", &["a b.txt"], 1), "echo 'a b.txt'");
        assert_eq!(
            render("convert {} {.}.png", &["dir/x.jpg"], 1),
            "convert dir/x.jpg dir/x.png"
        );
        assert_eq!(render("echo {/} {#} {%}", &["/tmp/a.b/c"], 7), "echo c 7 2");
        assert_eq!(render("echo {.}", &["dir.d/file"], 1), "echo dir.d/file");
        assert_eq!(render("gzip", &["f"], 1), "gzip f");
        assert_eq!(render("echo {x}", &["f"], 1), "echo {x} f");
        assert_eq!(render("echo {}", &["it's"], 1), r"echo 'it'\''s'");
        assert_eq!(render("echo {#}", &["f"], 3), "echo 3");
    }

    /// The values GNU parallel 20221122 prints for
    /// `parallel -k echo {//} {/.} {.} {/} ::: dir/x.tar.gz .bashrc a/b/ file`.
    #[test]
    fn transforms_match_gnu_parallel() {
        assert_eq!(
            render("echo {//} {/.} {.} {/}", &["dir/x.tar.gz"], 1),
            "echo dir x.tar dir/x.tar x.tar.gz"
        );
        assert_eq!(
            render("echo {//} {/.} {.} {/}", &[".bashrc"], 1),
            "echo . '' '' .bashrc"
        );
        assert_eq!(
            render("echo {//} {/.} {.} {/}", &["a/b/"], 1),
            "echo a '' a/b/ ''"
        );
        assert_eq!(
            render("echo {//} {/.} {.} {/}", &["file"], 1),
            "echo . file file file"
        );
        assert_eq!(dirname(b"/a"), b"/");
        assert_eq!(dirname(b"/"), b"/");
        assert_eq!(dirname(b"a//b"), b"a");
    }

    #[test]
    fn positional() {
        assert_eq!(render("echo {2} {1}", &["a", "b"], 1), "echo b a");
        assert_eq!(render("echo {-1} {1/}", &["x/a", "b"], 1), "echo b a");
        assert_eq!(render("echo {3} b", &["a"], 1), "echo  b");
        assert_eq!(render("echo", &["a", "b c"], 1), "echo a 'b c'");
        assert_eq!(render("echo {2.}", &["a", "b.c"], 1), "echo b");
        let t = Template::parse(&words("echo {2} {1}")).unwrap();
        assert_eq!(t.max_position(), 2);
    }

    #[test]
    fn refuses_perl_expressions_and_nothing() {
        assert!(matches!(
            Template::parse(&words("echo {= s/a/b/ =}")),
            Err(TemplateError::Unsupported(_))
        ));
        assert_eq!(Template::parse(&[]).unwrap_err(), TemplateError::Empty);
    }

    #[test]
    fn non_utf8_passes_through() {
        let t = Template::parse(&words("echo")).unwrap();
        let cmd = t.render(JobValues {
            args: &[vec![b'a', 0xff]],
            seq: 1,
            slot: 1,
        });
        assert_eq!(cmd, b"echo 'a\xff'");
    }
}
