//! The counting engine: lines, words, characters, bytes and the longest line's display width,
//! identical to GNU `wc` under `LC_ALL=C.UTF-8`, fed buffer by buffer.
//!
//! GNU's rules, reproduced: a line is a `\n` byte; a character is a valid UTF-8 sequence
//! (NUL included); an invalid byte is skipped, counted as neither a character nor anything
//! else; a word is a maximal run of printable characters between separators, where
//! non-printable characters (controls, unassigned code points) neither start nor end a word.
//! The character classes are glibc's, in `classes.rs`; the display widths for `-L` are
//! glibc's `wcwidth`, in `widths.rs`.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::classes::{NON_PRINTABLE, SEPARATORS};
use super::widths::{DOUBLE_WIDTH, ZERO_WIDTH};

/// One file's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub lines: u64,
    pub words: u64,
    pub chars: u64,
    pub bytes: u64,
    /// The longest line's display width (`-L`; counted only when asked for).
    pub max_line: u64,
}

impl std::ops::AddAssign for Counts {
    /// Adds a file to a total: sums, except the longest line, which is the longest of all.
    fn add_assign(&mut self, o: Counts) {
        self.lines += o.lines;
        self.words += o.words;
        self.chars += o.chars;
        self.bytes += o.bytes;
        self.max_line = self.max_line.max(o.max_line);
    }
}

fn in_ranges(c: u32, ranges: &[(u32, u32)]) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if c < lo {
                std::cmp::Ordering::Greater
            } else if c >= hi {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// ASCII bytes by what they do: not printable, printable, separator, newline (a separator that
/// also ends a line); `NON_ASCII` starts a multibyte sequence (or is invalid).
const OTHER: u8 = 0;
const PRINT: u8 = 1;
const SEPARATOR: u8 = 2;
const NEWLINE: u8 = 3;
const NON_ASCII: u8 = 4;

static ASCII: [u8; 256] = {
    let mut t = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = match b as u8 {
            b'\n' => NEWLINE,
            b'\t' | 0x0b | 0x0c | b'\r' | b' ' => SEPARATOR,
            0x21..=0x7e => PRINT,
            _ => OTHER,
        };
        b += 1;
    }
    t
};

/// The high bit of each byte lane.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Lanes (high bit) whose byte is `>= c`, for eight bytes that are all below 0x80 and `c <= 0x80`:
/// setting each lane's high bit first means the subtraction never borrows across lanes.
const fn ge(x: u64, c: u8) -> u64 {
    ((x | HIGH) - 0x0101_0101_0101_0101 * c as u64) & HIGH
}

/// What a character does to a word.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Separator,
    Printable,
    Other,
}

#[inline]
fn class(c: u32) -> Class {
    if c < 0x80 {
        return match c as u8 {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Class::Separator,
            0x21..=0x7e => Class::Printable,
            _ => Class::Other,
        };
    }
    if c < 0x1_0000 {
        // Text outside ASCII is mostly in the BMP: one table lookup instead of two binary
        // searches per character.
        return bmp_classes()[c as usize];
    }
    class_by_ranges(c)
}

/// The class of every BMP code point, built once from the range tables (64 KiB).
fn bmp_classes() -> &'static [Class; 0x1_0000] {
    static TABLE: std::sync::OnceLock<Box<[Class; 0x1_0000]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([Class::Other; 0x1_0000]);
        for (c, slot) in table.iter_mut().enumerate() {
            *slot = class_by_ranges(c as u32);
        }
        table
    })
}

/// The class from the generated ranges (any code point from U+0080 on).
fn class_by_ranges(c: u32) -> Class {
    if c < 0x80 {
        return class(c);
    }
    if c > 0x10_ffff {
        // Beyond Unicode (the old long forms glibc decodes): not printable.
        Class::Other
    } else if in_ranges(c, SEPARATORS) {
        Class::Separator
    } else if in_ranges(c, NON_PRINTABLE) {
        Class::Other
    } else {
        Class::Printable
    }
}

/// One multibyte sequence, decoded the way glibc's UTF-8 `mbrtowc` does: like UTF-8 but also
/// accepting the old 4- to 6-byte forms up to 0x7FFFFFFF (so `F4 90 80 80` is one character);
/// overlong forms and surrogates are invalid.
enum Decoded {
    Char(u32, usize),
    Invalid,
    /// Valid so far, but the buffer ends first.
    Incomplete,
}

/// One character at the start of `buf` (non-empty) and its length, or `None` if the bytes
/// there are not a (complete) character.
pub fn decode_one(buf: &[u8]) -> Option<(u32, usize)> {
    match buf[0] {
        b if b < 0x80 => Some((u32::from(b), 1)),
        _ => match decode(buf) {
            Decoded::Char(c, len) => Some((c, len)),
            Decoded::Invalid | Decoded::Incomplete => None,
        },
    }
}

/// glibc's `iswprint` in C.UTF-8.
pub fn is_printable(c: u32) -> bool {
    class(c) != Class::Other
}

/// glibc's `wcwidth` for a printable character of U+0080 or above.
fn width(c: u32) -> u64 {
    if in_ranges(c, ZERO_WIDTH) {
        0
    } else if in_ranges(c, DOUBLE_WIDTH) {
        2
    } else {
        1
    }
}

#[inline]
fn decode(buf: &[u8]) -> Decoded {
    let lead = buf[0];
    let (len, min, init) = match lead {
        0xc2..=0xdf => (2, 0x80, u32::from(lead & 0x1f)),
        0xe0..=0xef => (3, 0x800, u32::from(lead & 0x0f)),
        0xf0..=0xf7 => (4, 0x1_0000, u32::from(lead & 0x07)),
        0xf8..=0xfb => (5, 0x20_0000, u32::from(lead & 0x03)),
        0xfc..=0xfd => (6, 0x400_0000, u32::from(lead & 0x01)),
        _ => return Decoded::Invalid,
    };
    let mut c = init;
    for k in 1..len {
        let Some(&b) = buf.get(k) else {
            return Decoded::Incomplete;
        };
        if b & 0xc0 != 0x80 {
            return Decoded::Invalid;
        }
        c = (c << 6) | u32::from(b & 0x3f);
        // Reject overlong forms as soon as the second byte shows them.
        if k == 1 && (c << (6 * (len - 2))) < min {
            return Decoded::Invalid;
        }
    }
    if (0xd800..0xe000).contains(&c) {
        return Decoded::Invalid;
    }
    Decoded::Char(c, len)
}

/// Streaming counter: feed it buffers in order, then `finish`.
#[derive(Default)]
pub struct Counter {
    counts: Counts,
    in_word: bool,
    /// Bytes of a UTF-8 sequence cut by the end of the previous buffer.
    carry: Vec<u8>,
    /// Whether to measure line widths (`-L`): a second, slower pass over each buffer.
    widths: bool,
    /// The current line's display width so far.
    line_width: u64,
}

impl Counter {
    /// A counter that also measures the longest line (`-L`) when `widths` is set.
    pub fn new(widths: bool) -> Counter {
        Counter {
            widths,
            ..Counter::default()
        }
    }

    pub fn feed(&mut self, buf: &[u8]) {
        self.counts.bytes += buf.len() as u64;
        if self.carry.is_empty() {
            let n = self.scan(buf, false);
            self.carry.extend_from_slice(&buf[n..]);
        } else {
            // A sequence was cut by the previous buffer's end (rare): join and rescan.
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(buf);
            let n = self.scan(&joined, false);
            self.carry = joined[n..].to_vec();
        }
    }

    /// Scans `buf`; returns how many bytes it consumed (all but an incomplete trailing
    /// sequence, unless `last`, when every byte is consumed).
    fn scan(&mut self, buf: &[u8], last: bool) -> usize {
        // Counters in locals: the hot loop keeps them in registers.
        let (mut chars, mut lines, mut words) = (0u64, 0u64, 0u64);
        let mut in_word = self.in_word;
        let mut i = 0;
        let n = buf.len();
        let mut stop = n;
        while i < n {
            // How many ASCII bytes from `i` on to take one at a time.
            let mut ascii = usize::from(buf[i] < 0x80);
            // Eight plain-ASCII bytes (printable or separators, no controls) at once.
            if let Some(block) = buf.get(i..i + 8) {
                let x = u64::from_le_bytes(block.try_into().expect("8 bytes"));
                let high = x & HIGH;
                if high == 0 {
                    let printable = ge(x, 0x21) & !ge(x, 0x7f);
                    let separator = (ge(x, 0x09) & !ge(x, 0x0e)) | (ge(x, 0x20) & !ge(x, 0x21));
                    if printable | separator == HIGH {
                        let newline = ge(x, 0x0a) & !ge(x, 0x0b);
                        lines += u64::from(newline.count_ones());
                        chars += 8;
                        // A word ends at a separator right after a printable byte.
                        let before = (printable << 8) | if in_word { 0x80 } else { 0 };
                        words += u64::from((separator & before).count_ones());
                        in_word = printable >> 63 != 0;
                        i += 8;
                        continue;
                    }
                    // Control bytes among them: all eight one at a time.
                    ascii = 8;
                } else {
                    // The ASCII bytes before the first non-ASCII one, without retrying a block
                    // at each of them.
                    ascii = (high.trailing_zeros() / 8) as usize;
                }
            }
            if ascii > 0 {
                for &b in &buf[i..i + ascii] {
                    let t = ASCII[b as usize];
                    chars += 1;
                    lines += u64::from(t == NEWLINE);
                    let separates = t >= SEPARATOR;
                    words += u64::from(in_word && separates);
                    in_word = (in_word || t == PRINT) && !separates;
                }
                i += ascii;
                continue;
            }
            match decode(&buf[i..]) {
                Decoded::Char(c, len) => {
                    chars += 1;
                    match class(c) {
                        Class::Separator => {
                            words += u64::from(in_word);
                            in_word = false;
                        }
                        Class::Printable => in_word = true,
                        Class::Other => {}
                    }
                    i += len;
                }
                // Possibly cut by the buffer end: keep it for the next buffer.
                Decoded::Incomplete if !last => {
                    stop = i;
                    break;
                }
                // Invalid (or incomplete at the very end): skip its first byte, as wc does
                // when mbrtowc fails.
                Decoded::Incomplete | Decoded::Invalid => i += 1,
            }
        }
        self.counts.chars += chars;
        self.counts.lines += lines;
        self.counts.words += words;
        self.in_word = in_word;
        if self.widths {
            self.measure(&buf[..stop]);
        }
        stop
    }

    /// GNU `wc -L`: `\n`, `\r` and `\f` end a line, a tab moves to the next multiple of 8,
    /// printable characters add their `wcwidth`; `buf` holds whole characters only (what
    /// `scan` consumed).
    fn measure(&mut self, buf: &[u8]) {
        let mut pos = self.line_width;
        let mut max = self.counts.max_line;
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if b < 0x80 {
                match b {
                    b'\n' | b'\r' | 0x0c => {
                        max = max.max(pos);
                        pos = 0;
                    }
                    b'\t' => pos += 8 - pos % 8,
                    0x20..=0x7e => pos += 1,
                    _ => {}
                }
                i += 1;
                continue;
            }
            match decode(&buf[i..]) {
                Decoded::Char(c, len) => {
                    if is_printable(c) {
                        pos += width(c);
                    }
                    i += len;
                }
                Decoded::Invalid | Decoded::Incomplete => i += 1,
            }
        }
        self.line_width = pos;
        self.counts.max_line = max;
    }

    fn words_end(&mut self) {
        if self.in_word {
            self.counts.words += 1;
            self.in_word = false;
        }
    }

    pub fn finish(mut self) -> Counts {
        // Bytes of an incomplete sequence at the end of input are not characters.
        let carry = std::mem::take(&mut self.carry);
        self.scan(&carry, true);
        self.words_end();
        self.counts.max_line = self.counts.max_line.max(self.line_width);
        self.counts
    }
}

/// Counts everything `reader` yields, through the calling thread's read buffer.
pub fn count_reader(reader: &mut dyn Read, widths: bool) -> io::Result<Counts> {
    thread_local! {
        /// One read buffer per worker thread: a fresh 256 KiB buffer per file would cost an
        /// mmap, page faults and an munmap for every small file.
        static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 256 * 1024]);
    }
    BUF.with_borrow_mut(|buf| {
        let mut counter = Counter::new(widths);
        loop {
            let n = match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            counter.feed(&buf[..n]);
        }
        Ok(counter.finish())
    })
}

/// An I/O error as GNU prints it: the system's message without Rust's `(os error N)`.
pub fn message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Counts one file by name (opening whatever it is: a FIFO or a device named on the command
/// line is read, as GNU `wc` does).
pub fn count_path(path: &Path, widths: bool) -> Result<Counts, String> {
    let mut file = File::open(path).map_err(|e| message(&e))?;
    count_reader(&mut file, widths).map_err(|e| message(&e))
}

/// A batch of files for one call: their names as raw bytes (names need not be UTF-8).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Batch {
    pub names: Vec<Vec<u8>>,
    pub widths: bool,
}

/// Counts a batch of files, each with its own outcome; on the thread pool, or in a worker
/// process (registered below).
pub fn count_batch(batch: Batch) -> Vec<Result<Counts, String>> {
    batch
        .names
        .iter()
        .map(|name| count_path(Path::new(std::ffi::OsStr::from_bytes(name)), batch.widths))
        .collect()
}

futurepool_procs::register!(count_batch);

#[cfg(test)]
mod tests {
    use super::*;

    fn count(bytes: &[u8]) -> Counts {
        let mut c = Counter::new(true);
        c.feed(bytes);
        c.finish()
    }

    /// The same counts however the input is cut into buffers.
    #[test]
    fn buffer_boundaries_do_not_matter() {
        let mut text = "héllo wörld\u{a0}x\u{2028}y 日本語 \u{1F600}\n"
            .as_bytes()
            .to_vec();
        text.extend_from_slice(b"\xff\xe2\x82 ok \xf0\x9f\x98");
        let whole = count(&text);
        for cut in 1..text.len() {
            let mut c = Counter::new(true);
            c.feed(&text[..cut]);
            c.feed(&text[cut..]);
            assert_eq!(c.finish(), whole, "cut at {cut}");
        }
    }

    /// The BMP table agrees with the range tables it is built from.
    #[test]
    fn bmp_table_agrees_with_the_ranges() {
        for c in 0x80..0x1_0000u32 {
            assert!(class(c) == class_by_ranges(c), "U+{c:04X}");
        }
    }

    /// The eight-bytes-at-a-time path agrees with the byte-at-a-time one, at every alignment.
    #[test]
    fn block_path_agrees_with_byte_path() {
        let text: Vec<u8> =
            b"plain words  and\ttabs\r\nlines\x01ctl\x7f  end\nx yz\x0b\x0cq".repeat(3);
        for start in 0..8 {
            let slice = &text[start..];
            let by_block = count(slice);
            let mut by_byte = Counter::new(true);
            for b in slice {
                by_byte.feed(std::slice::from_ref(b)); // one byte at a time: never 8 in a row
            }
            assert_eq!(by_block, by_byte.finish(), "offset {start}");
        }
    }

    /// `-L` as GNU `wc -L` measures: tabs to multiples of 8, `\r` and `\f` end a line, wide
    /// characters count 2, combining marks 0, control characters nothing.
    #[test]
    fn longest_line() {
        assert_eq!(count(b"").max_line, 0);
        assert_eq!(count(b"abc\nabcdef").max_line, 6);
        assert_eq!(count(b"a\tb").max_line, 9);
        assert_eq!(count(b"abcdefgh\rab\x0cx").max_line, 8);
        assert_eq!(count("\u{65e5}\u{672c}e\u{301}\x01".as_bytes()).max_line, 5);
        assert_eq!(count(b"\xff\xfeab\x0bc").max_line, 3);
    }
}
