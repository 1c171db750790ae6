//! File names as GNU coreutils 9 shows them (gnulib's `quotearg`, `shell-escape` style, in a
//! UTF-8 locale): left alone when the shell would read them back unchanged, else in single
//! quotes, with control characters, invalid bytes and unprintable characters written as
//! `$'\n'` escapes — `new\nline.txt` is shown as `'new'$'\n''line.txt'`; a name whose only
//! problem is a single quote goes in double quotes (`"it's"`).
//!
//! `wc` quotes a name on its output line only when it contains a newline ([`line_name`]); its
//! error messages quote any name that needs it ([`quote`], gnulib's `quotef`, where `:` also
//! needs quoting).

use std::borrow::Cow;

use super::count::{decode_one, is_printable};

/// One character of a name, as the quoting sees it.
enum Piece<'a> {
    /// An ASCII byte.
    Ascii(u8),
    /// A valid, printable multibyte character (its bytes).
    Printable(&'a [u8]),
    /// Bytes that must be escaped in octal: an invalid byte, or an unprintable character.
    Octal(&'a [u8]),
}

fn pieces(name: &[u8]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b < 0x80 {
            out.push(Piece::Ascii(b));
            i += 1;
            continue;
        }
        match decode_one(&name[i..]) {
            Some((c, len)) if is_printable(c) => {
                out.push(Piece::Printable(&name[i..i + len]));
                i += len;
            }
            Some((_, len)) => {
                out.push(Piece::Octal(&name[i..i + len]));
                i += len;
            }
            None => {
                out.push(Piece::Octal(&name[i..i + 1]));
                i += 1;
            }
        }
    }
    out
}

/// The letter of a C escape (`\n`), if the byte has one.
fn c_escape(b: u8) -> Option<u8> {
    Some(match b {
        0x07 => b'a',
        0x08 => b'b',
        b'\t' => b't',
        b'\n' => b'n',
        0x0b => b'v',
        0x0c => b'f',
        b'\r' => b'r',
        _ => return None,
    })
}

/// Whether the name must be quoted, and whether double quotes would do (only a single quote
/// among characters that mean nothing special inside double quotes).
fn needs(pieces: &[Piece<'_>], colon: bool) -> (bool, bool) {
    let (mut needs, mut single_quote, mut double_ok) = (pieces.is_empty(), false, true);
    for (i, p) in pieces.iter().enumerate() {
        match *p {
            Piece::Ascii(b) => match b {
                b'#' | b'~' if i == 0 => needs = true,
                b'#' | b'~' | b' ' => needs |= b == b' ',
                b'\'' => {
                    needs = true;
                    single_quote = true;
                }
                b':' if colon => needs = true,
                b'!' | b'"' | b'$' | b'&' | b'(' | b')' | b'*' | b';' | b'<' | b'=' | b'>'
                | b'?' | b'[' | b'\\' | b'^' | b'`' | b'|' => {
                    needs = true;
                    double_ok = false;
                }
                0x20..=0x7e => {}
                _ => {
                    needs = true;
                    double_ok = false;
                }
            },
            Piece::Printable(_) => {}
            Piece::Octal(_) => {
                needs = true;
                double_ok = false;
            }
        }
    }
    (needs, single_quote && double_ok)
}

fn quote_with(name: &[u8], colon: bool) -> Cow<'_, [u8]> {
    let pieces = pieces(name);
    let (needs, double) = needs(&pieces, colon);
    if !needs {
        return Cow::Borrowed(name);
    }
    if double {
        let mut out = Vec::with_capacity(name.len() + 2);
        out.push(b'"');
        out.extend_from_slice(name);
        out.push(b'"');
        return Cow::Owned(out);
    }
    let mut out = vec![b'\''];
    // Inside a `$'…'` escape run: a plain character first closes it and reopens plain quotes.
    let mut escaping = false;
    let escape = |out: &mut Vec<u8>, escaping: &mut bool, bytes: &[u8]| {
        if !*escaping {
            out.extend_from_slice(b"'$'");
            *escaping = true;
        }
        out.push(b'\\');
        out.extend_from_slice(bytes);
    };
    for p in &pieces {
        match *p {
            Piece::Ascii(b) if b < 0x20 || b == 0x7f => match c_escape(b) {
                Some(letter) => escape(&mut out, &mut escaping, &[letter]),
                None => escape(&mut out, &mut escaping, format!("{b:03o}").as_bytes()),
            },
            Piece::Octal(bytes) => {
                for b in bytes {
                    escape(&mut out, &mut escaping, format!("{b:03o}").as_bytes());
                }
            }
            Piece::Ascii(b'\'') => {
                // Closes whatever quote is open, a literal quote, reopens.
                out.extend_from_slice(b"'\\''");
                escaping = false;
            }
            Piece::Ascii(b) => {
                if escaping {
                    out.extend_from_slice(b"''");
                    escaping = false;
                }
                out.push(b);
            }
            Piece::Printable(bytes) => {
                if escaping {
                    out.extend_from_slice(b"''");
                    escaping = false;
                }
                out.extend_from_slice(bytes);
            }
        }
    }
    out.push(b'\'');
    Cow::Owned(out)
}

/// A name for an error message (gnulib's `quotef`).
pub fn quote(name: &[u8]) -> String {
    String::from_utf8_lossy(&quote_with(name, true)).into_owned()
}

/// A name for a count line: quoted only if it contains a newline, as GNU `wc` 9 does.
pub fn line_name(name: &[u8]) -> Cow<'_, [u8]> {
    if name.contains(&b'\n') {
        quote_with(name, true)
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What GNU `wc` 9.1 printed for these names (C.UTF-8).
    #[test]
    fn as_gnu_wc_shows_them() {
        for (name, shown) in [
            (&b"new\nline.txt"[..], "'new'$'\\n''line.txt'"),
            (b"a\n", "'a'$'\\n'"),
            (b"\nb", "''$'\\n''b'"),
            (b"it's\nx", "'it'\\''s'$'\\n''x'"),
            (b"tab\tand\nnl", "'tab'$'\\t''and'$'\\n''nl'"),
            (b"sp ace\n", "'sp ace'$'\\n'"),
            (b"\xff\nbad", "''$'\\377\\n''bad'"),
            ("caf\u{e9}\n".as_bytes(), "'caf\u{e9}'$'\\n'"),
            (b"x\xc2\x85\ny", "'x'$'\\302\\205\\n''y'"),
            (b"a\n\nb", "'a'$'\\n\\n''b'"),
            (b"q\"\n$x", "'q\"'$'\\n''$x'"),
            (b"\x01\n", "''$'\\001\\n'"),
            (b"plain name.txt", "plain name.txt"),
        ] {
            assert_eq!(String::from_utf8_lossy(&line_name(name)), shown, "{name:?}");
        }
        for (name, shown) in [
            ("a b", "'a b'"),
            ("it's", "\"it's\""),
            ("a:b", "'a:b'"),
            ("a=b", "'a=b'"),
            ("#x", "'#x'"),
            ("x#", "x#"),
            ("~x", "'~x'"),
            ("a{b}", "a{b}"),
            ("\u{e9}", "\u{e9}"),
            ("a!b", "'a!b'"),
            ("a,b%+@]", "a,b%+@]"),
        ] {
            assert_eq!(quote(name.as_bytes()), shown, "{name:?}");
        }
    }
}
