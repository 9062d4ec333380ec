//! The text forms of pickle's protocols 0 and 1 and of Python 2's `str`, decoded as CPython's
//! unpickler decodes them: INT and LONG as `int(line, 0)`, STRING through `codecs.escape_decode`,
//! UNICODE through the `raw-unicode-escape` codec. Integers wider than 64 bits (LONG, LONG1,
//! LONG4) are kept as decimal text.

/// An integer from the file: `i64` when it fits, else its decimal digits (with a `-` if negative).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PyInt {
    Small(i64),
    Big(String),
}

/// Longest integer converted, in digits or bytes. Data files hold nothing near this; the limit
/// keeps the quadratic base conversion cheap on hostile input.
const MAX_INT_LEN: usize = 4096;

/// `int(text, 0)`: surrounding whitespace, a sign, a `0x`/`0o`/`0b` prefix, single underscores
/// between digits, and no leading zero on a non-zero decimal.
pub(super) fn parse_int(text: &[u8]) -> Option<PyInt> {
    let s = text.trim_ascii();
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match s {
        [b'0', p, rest @ ..] if matches!(p | 0x20, b'x' | b'o' | b'b') => {
            let radix = match p | 0x20 {
                b'x' => 16,
                b'o' => 8,
                _ => 2,
            };
            (radix, rest.strip_prefix(b"_").unwrap_or(rest))
        }
        _ => (10, s),
    };
    if digits.is_empty() || digits.len() > MAX_INT_LEN {
        return None;
    }
    let mut mag: Vec<u32> = Vec::new();
    let mut after_underscore = true; // no leading underscore
    for &c in digits {
        if c == b'_' {
            if after_underscore {
                return None;
            }
            after_underscore = true;
            continue;
        }
        let d = (c as char).to_digit(radix)?;
        mul_add(&mut mag, radix, d);
        after_underscore = false;
    }
    if after_underscore {
        return None;
    }
    if radix == 10 && digits[0] == b'0' && !mag.is_empty() {
        return None;
    }
    Some(from_magnitude(neg, mag))
}

/// A little-endian two's-complement integer (LONG1, LONG4); `None` if longer than the limit.
pub(super) fn int_from_le(b: &[u8]) -> Option<PyInt> {
    let n = b.len();
    if n <= 8 {
        let mut v: u64 = 0;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as u64) << (8 * i);
        }
        if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
            v |= u64::MAX << (8 * n); // sign-extend
        }
        return Some(PyInt::Small(v as i64));
    }
    if n > MAX_INT_LEN {
        return None;
    }
    let neg = b[n - 1] & 0x80 != 0;
    let mut bytes = b.to_vec();
    if neg {
        // Magnitude of a negative number: invert and add one.
        let mut carry = true;
        for x in bytes.iter_mut() {
            let (v, c) = (!*x).overflowing_add(carry as u8);
            *x = v;
            carry = c;
        }
    }
    let mag: Vec<u32> = bytes
        .chunks(4)
        .map(|c| c.iter().rev().fold(0u32, |a, &x| (a << 8) | x as u32))
        .collect();
    Some(from_magnitude(neg, mag))
}

fn mul_add(mag: &mut Vec<u32>, mul: u32, add: u32) {
    let mut carry = add as u64;
    for limb in mag.iter_mut() {
        let v = *limb as u64 * mul as u64 + carry;
        *limb = v as u32;
        carry = v >> 32;
    }
    if carry != 0 {
        mag.push(carry as u32);
    }
}

fn from_magnitude(neg: bool, mut mag: Vec<u32>) -> PyInt {
    while mag.last() == Some(&0) {
        mag.pop();
    }
    if mag.len() <= 2 {
        let v = mag.iter().rev().fold(0u64, |a, &l| (a << 32) | l as u64);
        match (neg, i64::try_from(v)) {
            (false, Ok(s)) => return PyInt::Small(s),
            (true, Ok(s)) => return PyInt::Small(-s),
            (true, Err(_)) if v == 1 << 63 => return PyInt::Small(i64::MIN),
            _ => {}
        }
    }
    // Decimal digits, nine at a time, least significant group first.
    let mut groups = Vec::new();
    while !mag.is_empty() {
        let mut rem: u64 = 0;
        for limb in mag.iter_mut().rev() {
            let v = (rem << 32) | *limb as u64;
            *limb = (v / 1_000_000_000) as u32;
            rem = v % 1_000_000_000;
        }
        groups.push(rem as u32);
        while mag.last() == Some(&0) {
            mag.pop();
        }
    }
    let mut s = String::from(if neg { "-" } else { "" });
    let mut it = groups.iter().rev();
    if let Some(first) = it.next() {
        s.push_str(&first.to_string());
    }
    for g in it {
        s.push_str(&format!("{g:09}"));
    }
    PyInt::Big(s)
}

/// `float(line)`.
pub(super) fn parse_float(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text.trim_ascii()).ok()?.parse().ok()
}

/// STRING's argument: a quoted Python 2 `repr`, decoded with `codecs.escape_decode`.
pub(super) fn unquote_string(line: &[u8]) -> Result<Vec<u8>, &'static str> {
    let inner = match line {
        [q @ (b'\'' | b'"'), inner @ .., e] if q == e => inner,
        _ => return Err("the STRING opcode's argument is not quoted"),
    };
    escape_decode(inner)
}

/// `codecs.escape_decode`: Python string-literal escapes to bytes.
pub(super) fn escape_decode(b: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else {
            return Err("a STRING ends with a lone backslash");
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'r' => out.push(b'\r'),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match b.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8); // CPython keeps the low byte of \400..\777
            }
            b'x' => {
                let hex = |k: usize| b.get(k).and_then(|&h| (h as char).to_digit(16));
                match (hex(i), hex(i + 1)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err("a STRING holds an invalid \\x escape"),
                }
                i += 2;
            }
            // An unknown escape stays as written.
            _ => out.extend([b'\\', e]),
        }
    }
    Ok(out)
}

/// A decoded text: latin-1 bytes while every character is ≤ U+00FF (array payloads stay bytes),
/// else a `String`.
#[derive(Debug, PartialEq)]
pub(super) enum Text {
    Latin1(Vec<u8>),
    Wide(String),
}

/// The `raw-unicode-escape` codec: bytes are code points U+0000..U+00FF, except `\uXXXX` and
/// `\UXXXXXXXX` after an odd run of backslashes.
pub(super) fn raw_unicode_escape(b: &[u8]) -> Result<Text, &'static str> {
    let mut narrow = Vec::with_capacity(b.len());
    let mut wide: Option<String> = None;
    let mut push = |ch: u32, narrow: &mut Vec<u8>| -> Result<(), &'static str> {
        match (&mut wide, u8::try_from(ch)) {
            (None, Ok(c)) => narrow.push(c),
            (w, _) => {
                let s = w.get_or_insert_with(|| narrow.iter().map(|&c| c as char).collect());
                s.push(char::from_u32(ch).ok_or("a UNICODE string holds a lone surrogate")?);
            }
        }
        Ok(())
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            push(b[i] as u32, &mut narrow)?;
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i] == b'\\' {
            i += 1;
        }
        let run = i - start;
        let escape = run % 2 == 1 && matches!(b.get(i), Some(b'u' | b'U'));
        for _ in 0..run - escape as usize {
            push(b'\\' as u32, &mut narrow)?;
        }
        if escape {
            let count = if b[i] == b'u' { 4 } else { 8 };
            let digits = b
                .get(i + 1..i + 1 + count)
                .ok_or("a UNICODE string holds a truncated \\u escape")?;
            let mut ch: u32 = 0;
            for &d in digits {
                let v = (d as char)
                    .to_digit(16)
                    .ok_or("a UNICODE string holds a truncated \\u escape")?;
                ch = (ch << 4) | v;
            }
            if ch > 0x10FFFF {
                return Err("a UNICODE string holds an escape beyond U+10FFFF");
            }
            push(ch, &mut narrow)?;
            i += 1 + count;
        }
    }
    Ok(match wide {
        Some(s) => Text::Wide(s),
        None => Text::Latin1(narrow),
    })
}

/// Every opcode's name as `pickletools` spells it, for error messages.
pub(super) fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "not a pickle opcode",
    }
}
