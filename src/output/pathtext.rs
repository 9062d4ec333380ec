//! Paths as JSON text, losslessly. File names on Linux are bytes; JSON strings are Unicode. A path
//! that is valid UTF-8 is written as it is; any other path is written escaped (`\\` for a
//! backslash, `\xNN` for each byte that is not part of valid UTF-8) and its record carries
//! `path_escaped: true`, so a reader knows to [`decode`] it.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The text of `path`, and whether it had to be escaped.
pub fn encode(path: &Path) -> (String, bool) {
    match path.to_str() {
        Some(s) => (s.to_string(), false),
        None => (escape(path.as_os_str().as_bytes()), true),
    }
}

/// `path` as text in the escaped form, whether or not it is valid UTF-8 (all paths of one record
/// share one form).
pub fn encode_escaped(path: &Path) -> String {
    escape(path.as_os_str().as_bytes())
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The path a text stands for: itself, or unescaped when `escaped`. A malformed escape is an error
/// naming the text.
pub fn decode(text: &str, escaped: bool) -> Result<PathBuf, String> {
    if !escaped {
        return Ok(PathBuf::from(text));
    }
    let bad = || format!("malformed escaped path `{text}`");
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', t @ ..] => {
                out.push(b'\\');
                rest = t;
            }
            [b'x', h, l, t @ ..] => {
                let hex = std::str::from_utf8(&[*h, *l])
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or_else(bad)?;
                out.push(hex);
                rest = t;
            }
            _ => return Err(bad()),
        }
    }
    Ok(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utf8_paths_stay_as_they_are() {
        assert_eq!(
            encode(Path::new("a/b c\\d.png")),
            ("a/b c\\d.png".into(), false)
        );
    }

    #[test]
    fn invalid_bytes_are_escaped_and_restored() {
        let p = PathBuf::from(OsString::from_vec(b"sub/x\xff\\y\xc3.png".to_vec()));
        let (text, escaped) = encode(&p);
        assert!(escaped);
        assert_eq!(text, "sub/x\\xff\\\\y\\xc3.png");
        assert_eq!(decode(&text, true).unwrap(), p);
        assert!(decode("a\\q", true).is_err());
        assert!(decode("a\\x4", true).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let p = PathBuf::from(OsString::from_vec(bytes));
            let (text, escaped) = encode(&p);
            prop_assert_eq!(decode(&text, escaped).unwrap(), p.clone());
            prop_assert_eq!(decode(&encode_escaped(&p), true).unwrap(), p);
        }
    }
}
