//! Input sources: `:::` arguments, `::::` files, their linked forms `:::+`/`::::+`, `-a FILE`
//! and stdin, combined as GNU parallel combines them (the cartesian product of the sources,
//! first source outermost; a linked source pairs up with the one before it, the shorter one
//! deciding the length; with `--link` every source pairs up, the shorter ones wrapping around),
//! split into columns by `--colsep`. Values are bytes from the OS to the
//! command line: nothing here assumes UTF-8.
//!
//! A single file or stdin source is read lazily, one record per job started, so `yes | pool run`
//! does not fill memory; several sources are read whole first (every combination needs them).

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use regex::bytes::Regex;

/// The values of one job: one per source (or per column with `--colsep`).
pub type Values = Vec<Vec<u8>>;

/// An input that cannot be read or understood.
#[derive(Debug)]
pub enum InputError {
    /// A `::::`/`-a` file (or stdin) could not be read.
    Read { path: PathBuf, err: io::Error },
    /// A separator with nothing after it, or another misuse of the source syntax.
    Usage(String),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Read { path, err } => {
                write!(f, "cannot read inputs from {}: {err}", path.display())
            }
            InputError::Usage(what) => f.write_str(what),
        }
    }
}

/// No `source()`: the message already ends with the OS error, which `{:#}` would print again.
impl std::error::Error for InputError {}

/// Where one source's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The words after `:::`.
    Args(Vec<Vec<u8>>),
    /// A file's records (`-` is stdin).
    File(PathBuf),
}

/// One input source as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: Origin,
    /// `:::+`/`::::+`: paired with the previous source instead of multiplied.
    pub linked: bool,
}

/// The command line after the options, split into the template and the sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub template: Vec<Vec<u8>>,
    pub sources: Vec<Source>,
}

impl CommandLine {
    /// Splits `COMMAND... [::: ARGS...] [:::: FILES...]…`; the `-a` files come first.
    pub fn parse(words: &[OsString], arg_files: &[PathBuf]) -> Result<CommandLine, InputError> {
        let mut sources: Vec<Source> = arg_files
            .iter()
            .map(|p| Source {
                origin: Origin::File(p.clone()),
                linked: false,
            })
            .collect();
        let mut template = Vec::new();
        let mut current: Option<(&str, Vec<Vec<u8>>)> = None;
        let flush = |current: Option<(&str, Vec<Vec<u8>>)>,
                     sources: &mut Vec<Source>|
         -> Result<(), InputError> {
            let Some((sep, items)) = current else {
                return Ok(());
            };
            if items.is_empty() && sep.starts_with("::::") {
                return Err(InputError::Usage(format!(
                    "`{sep}` needs at least one file"
                )));
            }
            let linked = sep.ends_with('+');
            if linked && sources.is_empty() {
                return Err(InputError::Usage(format!(
                    "`{sep}` links to the input source before it, and there is none"
                )));
            }
            if sep.starts_with("::::") {
                for item in items {
                    sources.push(Source {
                        origin: Origin::File(PathBuf::from(OsString::from_vec(item))),
                        linked,
                    });
                }
            } else {
                sources.push(Source {
                    origin: Origin::Args(items),
                    linked,
                });
            }
            Ok(())
        };
        for word in words {
            let bytes = word.as_bytes();
            let sep = match bytes {
                b":::" => Some(":::"),
                b":::+" => Some(":::+"),
                b"::::" => Some("::::"),
                b"::::+" => Some("::::+"),
                _ => None,
            };
            match (sep, &mut current) {
                (Some(sep), _) => {
                    flush(current.take(), &mut sources)?;
                    current = Some((sep, Vec::new()));
                }
                (None, Some((_, items))) => items.push(bytes.to_vec()),
                (None, None) => template.push(bytes.to_vec()),
            }
        }
        flush(current, &mut sources)?;
        let stdin_uses = sources
            .iter()
            .filter(|s| s.origin == Origin::File(PathBuf::from("-")))
            .count();
        if stdin_uses > 1 {
            return Err(InputError::Usage(
                "stdin (`-`) can be only one input source".into(),
            ));
        }
        Ok(CommandLine { template, sources })
    }
}

/// How records are read and split.
#[derive(Debug, Clone)]
pub struct Format {
    /// Record terminator: `\n`, or `\0` with `-0`.
    pub terminator: u8,
    /// `--colsep`: split every value into columns.
    pub colsep: Option<Regex>,
}

/// How several sources make jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Every combination (`:::+`/`::::+` sources paired with the one before).
    Product,
    /// `--link`: every source paired up, the shorter ones wrapping around.
    LinkAll,
}

/// The jobs' values, in GNU parallel's order, with the total when it is known in advance.
pub struct Inputs {
    iter: Box<dyn Iterator<Item = Result<Values, InputError>> + Send>,
    total: Option<usize>,
}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("total", &self.total)
            .finish()
    }
}

impl Inputs {
    /// Opens the sources (stdin when there are none).
    pub fn open(
        sources: &[Source],
        format: &Format,
        combine: Combine,
    ) -> Result<Inputs, InputError> {
        let stdin = Source {
            origin: Origin::File(PathBuf::from("-")),
            linked: false,
        };
        let sources = if sources.is_empty() {
            std::slice::from_ref(&stdin)
        } else {
            sources
        };
        let colsep = format.colsep.clone();
        let split = move |values: Values| -> Values {
            match &colsep {
                None => values,
                Some(re) => values
                    .iter()
                    .flat_map(|v| re.split(v).map(<[u8]>::to_vec).collect::<Vec<_>>())
                    .collect(),
            }
        };
        if let [Source {
            origin: Origin::File(path),
            ..
        }] = sources
        {
            let records = Records::open(path, format.terminator)?;
            return Ok(Inputs {
                iter: Box::new(records.map(move |r| r.map(|v| split(vec![v])))),
                total: None,
            });
        }
        // Several sources: read them all, pair the linked ones, multiply the groups.
        let mut groups: Vec<Vec<Values>> = Vec::new();
        let mut all = Vec::new();
        for source in sources {
            let values: Vec<Vec<u8>> = match &source.origin {
                Origin::Args(args) => args.clone(),
                Origin::File(path) => {
                    Records::open(path, format.terminator)?.collect::<Result<_, _>>()?
                }
            };
            if combine == Combine::LinkAll {
                all.push(values);
                continue;
            }
            match groups.last_mut() {
                Some(group) if source.linked => {
                    group.truncate(values.len());
                    for (row, v) in group.iter_mut().zip(values) {
                        row.push(v);
                    }
                }
                _ => groups.push(values.into_iter().map(|v| vec![v]).collect()),
            }
        }
        if combine == Combine::LinkAll {
            // `--link`: one group; the shorter sources wrap around to the longest's length.
            let longest = all.iter().map(Vec::len).max().unwrap_or(0);
            let rows = if all.iter().any(Vec::is_empty) {
                0
            } else {
                longest
            };
            groups.push(
                (0..rows)
                    .map(|i| all.iter().map(|v| v[i % v.len()].clone()).collect())
                    .collect(),
            );
        }
        let total = groups
            .iter()
            .try_fold(1usize, |acc, g| acc.checked_mul(g.len()))
            .ok_or_else(|| InputError::Usage("too many combinations of inputs".into()))?;
        let product = Product {
            groups,
            next: 0,
            total,
        };
        Ok(Inputs {
            iter: Box::new(product.map(move |v| Ok(split(v)))),
            total: Some(total),
        })
    }

    /// The number of jobs, when known before reading them all.
    pub fn total(&self) -> Option<usize> {
        self.total
    }

    /// Reads every value now (for `--halt …%`, which needs the total).
    pub fn collect_all(self) -> Result<Inputs, InputError> {
        let all: Vec<Values> = self.iter.collect::<Result<_, _>>()?;
        Ok(Inputs {
            total: Some(all.len()),
            iter: Box::new(all.into_iter().map(Ok)),
        })
    }
}

impl Iterator for Inputs {
    type Item = Result<Values, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next()
    }
}

/// The cartesian product of the groups, the first group outermost.
struct Product {
    groups: Vec<Vec<Values>>,
    next: usize,
    total: usize,
}

impl Iterator for Product {
    type Item = Values;

    fn next(&mut self) -> Option<Values> {
        if self.next >= self.total {
            return None;
        }
        let mut rest = self.next;
        let mut indexes = vec![0; self.groups.len()];
        for (slot, group) in indexes.iter_mut().zip(&self.groups).rev() {
            *slot = rest % group.len();
            rest /= group.len();
        }
        self.next += 1;
        Some(
            indexes
                .iter()
                .zip(&self.groups)
                .flat_map(|(&i, g)| g[i].iter().cloned())
                .collect(),
        )
    }
}

/// A file's (or stdin's) records, read lazily; the terminator is removed.
struct Records {
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    terminator: u8,
    failed: bool,
}

impl Records {
    fn open(path: &std::path::Path, terminator: u8) -> Result<Records, InputError> {
        let reader: Box<dyn BufRead + Send> = if path.as_os_str() == "-" {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file = File::open(path).map_err(|err| InputError::Read {
                path: path.to_path_buf(),
                err,
            })?;
            Box::new(BufReader::new(file))
        };
        Ok(Records {
            path: if path.as_os_str() == "-" {
                PathBuf::from("stdin")
            } else {
                path.to_path_buf()
            },
            reader,
            terminator,
            failed: false,
        })
    }
}

impl Iterator for Records {
    type Item = Result<Vec<u8>, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut record = Vec::new();
        match self.reader.read_until(self.terminator, &mut record) {
            Ok(0) => None,
            Ok(_) => {
                if record.last() == Some(&self.terminator) {
                    record.pop();
                }
                Some(Ok(record))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(InputError::Read {
                    path: self.path.clone(),
                    err,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn jobs(line: &str) -> Vec<String> {
        jobs_with(line, Combine::Product)
    }

    fn jobs_with(line: &str, combine: Combine) -> Vec<String> {
        let cl = CommandLine::parse(&words(line), &[]).unwrap();
        let format = Format {
            terminator: b'\n',
            colsep: None,
        };
        Inputs::open(&cl.sources, &format, combine)
            .unwrap()
            .map(|v| {
                let v = v.unwrap();
                v.iter()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// `parallel -k echo ::: a b ::: 1 2` and `::: a b c :::+ 1 2` in GNU parallel 20221122.
    #[test]
    fn product_and_links_as_gnu_parallel() {
        assert_eq!(jobs("echo ::: a b ::: 1 2"), ["a 1", "a 2", "b 1", "b 2"]);
        assert_eq!(jobs("echo ::: a b c :::+ 1 2"), ["a 1", "b 2"]);
        assert_eq!(jobs("echo ::: a b :::+ 1 2 ::: x"), ["a 1 x", "b 2 x"]);
        assert_eq!(jobs("echo ::: a ::: "), Vec::<String>::new());
        // `parallel -k --link echo ::: a b c ::: 1 2`
        assert_eq!(
            jobs_with("echo ::: a b c ::: 1 2", Combine::LinkAll),
            ["a 1", "b 2", "c 1"]
        );
    }

    #[test]
    fn command_line_split() {
        let cl = CommandLine::parse(&words("echo {} ::: a :::: f g ::::+ h"), &[]).unwrap();
        assert_eq!(cl.template, [b"echo".to_vec(), b"{}".to_vec()]);
        assert_eq!(cl.sources.len(), 4);
        assert!(cl.sources[3].linked);
        assert!(CommandLine::parse(&words("echo :::+ a"), &[]).is_err());
        assert!(CommandLine::parse(&words("echo ::::"), &[]).is_err());
        assert!(CommandLine::parse(&words("echo :::: - -"), &[]).is_err());
    }
}
