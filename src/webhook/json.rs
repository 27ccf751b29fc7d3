//! A small JSON reader written for webhook bodies.
//!
//! It reads a `&str` (the body is checked for UTF-8 once, up front) and hands out string values as
//! slices of the body, still escaped ([`JsonStr`]); they are unescaped only when a caller asks.
//! Nothing is allocated while reading. The grammar is RFC 8259's, checked in full: unknown values
//! are skipped with the same checks, so a body that passes is valid JSON.

use std::borrow::Cow;
use std::fmt;

/// A JSON string value as it appears in the body, still escaped.
///
/// Meta escapes every `/` and every non-ASCII character (`\u00e9`), so decoding eagerly would
/// allocate for most strings. A `JsonStr` keeps the raw slice and decodes on request:
/// [`JsonStr::decode`] borrows when there was nothing to unescape.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The text between the quotes, escapes left as they are in the body.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the raw text holds any escape sequence.
    pub fn is_escaped(&self) -> bool {
        self.escaped
    }

    /// The decoded text. Borrows from the body when the raw text holds no escape.
    pub fn decode(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// Whether the decoded text equals `other`, without allocating when nothing is escaped.
    pub fn eq_str(&self, other: &str) -> bool {
        if self.escaped {
            self.decode() == other
        } else {
            self.raw == other
        }
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.decode(), f)
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decode())
    }
}

/// A JSON value kept as its raw text: an unknown event, a template payload, an app-roles map.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    pub(crate) fn new(raw: &'a str) -> Self {
        Self(raw)
    }

    /// The value's text exactly as it appears in the body.
    pub fn get(&self) -> &'a str {
        self.0
    }

    /// Parses the value into a [`serde_json::Value`].
    ///
    /// # Errors
    /// Never for a value produced by this crate's parser (it was checked when read); the
    /// `Result` is kept because the number may exceed what `serde_json` represents.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.0)
    }
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Unescapes the raw text of a JSON string that the reader has already validated.
fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[run..i]);
        let c = b[i + 1];
        i += 2;
        match c {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'u' => {
                let hi = hex4(&b[i..i + 4]);
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // Validated: a low surrogate escape follows.
                    let lo = hex4(&b[i + 2..i + 6]);
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            // `"`, `\` and `/` stand for themselves.
            other => out.push(char::from(other)),
        }
        run = i;
    }
    out.push_str(&raw[run..]);
    out
}

fn hex_val(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'f' => Some(u32::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(c - b'A' + 10)),
        _ => None,
    }
}

fn hex4(b: &[u8]) -> u32 {
    b.iter()
        .fold(0, |acc, &c| (acc << 4) | hex_val(c).unwrap_or(0))
}

/// The JSON type found where another was expected, for error messages.
pub(crate) fn type_name(first: u8) -> &'static str {
    match first {
        b'"' => "a string",
        b'{' => "an object",
        b'[' => "an array",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

/// Why reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The text is not valid JSON. The whole body is unusable.
    Syntax(Box<Syntax>),
    /// Valid JSON, but not the shape expected. Only the enclosing item is lost.
    Shape(Box<Shape>),
}

/// Where and why the text is not JSON. Boxed in [`Fail`], so that every `Result` the reader
/// returns stays two words wide on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Syntax {
    pub(crate) at: usize,
    pub(crate) what: &'static str,
}

/// A value that is valid JSON but not of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) field: &'static str,
    pub(crate) problem: Problem,
}

/// What was wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Missing,
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    Invalid(&'static str),
}

pub(crate) fn shape(field: &'static str, problem: Problem) -> Fail {
    Fail::Shape(Box::new(Shape { field, problem }))
}

/// Byte classes for the string scanner: 1 = ends the fast run (`"`, `\`, control characters).
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether any byte of `word` is `"`, `\\` or a control character (SWAR, no `unsafe`).
#[inline]
fn has_stop_byte(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (quote | backslash | control) != 0
}

pub(crate) struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: u32,
    max_depth: u32,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(s: &'a str, max_depth: u32) -> Self {
        Self {
            s,
            b: s.as_bytes(),
            pos: 0,
            depth: 0,
            max_depth,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Where the reader is, to come back to after a shape error.
    pub(crate) fn mark(&self) -> (usize, u32) {
        (self.pos, self.depth)
    }

    pub(crate) fn reset(&mut self, mark: (usize, u32)) {
        (self.pos, self.depth) = mark;
    }

    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        &self.s[from..to]
    }

    fn syntax<T>(&self, what: &'static str) -> Result<T, Fail> {
        Err(Fail::Syntax(Box::new(Syntax { at: self.pos, what })))
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next significant byte, not consumed.
    #[inline]
    pub(crate) fn peek(&mut self) -> Result<u8, Fail> {
        // Meta's bodies hold no whitespace: one comparison in the common case.
        match self.b.get(self.pos) {
            Some(&c) if c > b' ' => Ok(c),
            _ => self.peek_after_ws(),
        }
    }

    #[cold]
    fn peek_after_ws(&mut self) -> Result<u8, Fail> {
        self.skip_ws();
        match self.b.get(self.pos) {
            Some(&c) => Ok(c),
            None => self.syntax("unexpected end of input"),
        }
    }

    /// Checks that only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<(), Fail> {
        self.skip_ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            self.syntax("trailing characters after the JSON value")
        }
    }

    fn expect_type(
        &mut self,
        first: u8,
        field: &'static str,
        expected: &'static str,
    ) -> Result<(), Fail> {
        let c = self.peek()?;
        if c == first {
            Ok(())
        } else {
            // Make sure the value is at least valid JSON before calling it a shape problem.
            let found = type_name(c);
            let at = self.pos;
            self.skip()?;
            self.pos = at;
            Err(shape(field, Problem::WrongType { expected, found }))
        }
    }

    /// Consumes `null` if it is next.
    pub(crate) fn null(&mut self) -> Result<bool, Fail> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Fail> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.syntax("invalid literal")
        }
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, Fail> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => self.expect_type(b't', field, "a boolean").map(|()| false),
        }
    }

    pub(crate) fn str(&mut self, field: &'static str) -> Result<JsonStr<'a>, Fail> {
        self.expect_type(b'"', field, "a string")?;
        self.string()
    }

    pub(crate) fn opt_str(&mut self, field: &'static str) -> Result<Option<JsonStr<'a>>, Fail> {
        if self.null()? {
            return Ok(None);
        }
        self.str(field).map(Some)
    }

    /// An identifier: a string, or a bare integer (some app ids arrive as numbers).
    pub(crate) fn id(&mut self, field: &'static str) -> Result<JsonStr<'a>, Fail> {
        match self.peek()? {
            b'"' => self.string(),
            b'0'..=b'9' => {
                let start = self.pos;
                let (_, integer) = self.number()?;
                if !integer {
                    return Err(shape(
                        field,
                        Problem::Invalid("an identifier must be an integer"),
                    ));
                }
                Ok(JsonStr {
                    raw: &self.s[start..self.pos],
                    escaped: false,
                })
            }
            _ => {
                self.expect_type(b'"', field, "a string")?;
                self.string()
            }
        }
    }

    /// A non-negative integer, as a JSON number or a string of digits.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, Fail> {
        let first = self.peek()?;
        if first.is_ascii_digit() {
            // Fast path: a plain integer, accumulated as it is scanned. Anything else (leading
            // zero, fraction, exponent, overflow) takes the general path below.
            let b = self.b;
            let mut i = self.pos;
            let mut value: u64 = 0;
            let mut fits = true;
            while let Some(&d) = b.get(i) {
                if !d.is_ascii_digit() {
                    break;
                }
                match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(v) => value = v,
                    None => fits = false,
                }
                i += 1;
            }
            let plain = fits
                && !(first == b'0' && i > self.pos + 1)
                && !matches!(b.get(i), Some(b'.' | b'e' | b'E'));
            if plain {
                self.pos = i;
                return Ok(value);
            }
        }
        let why = "not a non-negative integer";
        self.number_text(field, why)?
            .parse()
            .map_err(|_| shape(field, Problem::Invalid(why)))
    }

    /// The text of a number, or of a string that should hold one (unescaped); `why` says
    /// what is wrong with an escaped string.
    fn number_text(&mut self, field: &'static str, why: &'static str) -> Result<&'a str, Fail> {
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                if s.escaped {
                    return Err(shape(field, Problem::Invalid(why)));
                }
                Ok(s.raw)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                self.number()?;
                Ok(&self.s[start..self.pos])
            }
            _ => {
                // Always an error here: the value is not a number.
                self.expect_type(b'-', field, "a number")?;
                Ok("")
            }
        }
    }

    /// A time in milliseconds since the epoch, as Meta and older payloads write it: an
    /// integer, a number with a fraction (truncated), or either as a string. Negative, not
    /// finite, or past `u64::MAX` is invalid.
    pub(crate) fn millis(&mut self, field: &'static str) -> Result<u64, Fail> {
        const WHY: &str = "not a time in milliseconds";
        let first = self.peek()?;
        if first.is_ascii_digit() {
            let at = self.mark();
            if let Ok(value) = self.u64(field) {
                return Ok(value);
            }
            self.reset(at);
        }
        let text = self.number_text(field, WHY)?;
        if let Ok(value) = text.parse::<u64>() {
            return Ok(value);
        }
        match text.parse::<f64>() {
            // The range check keeps the cast exact enough and never saturating by surprise.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked non-negative and below 2^64 first (NaN fails the range)"
            )]
            Ok(v) if (0.0..18_446_744_073_709_551_616.0).contains(&v) => Ok(v.trunc() as u64),
            _ => Err(shape(field, Problem::Invalid(WHY))),
        }
    }

    pub(crate) fn f64(&mut self, field: &'static str) -> Result<f64, Fail> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                self.number()?;
                self.s[start..self.pos]
                    .parse()
                    .map_err(|_| shape(field, Problem::Invalid("not a number")))
            }
            _ => {
                // Always an error here: the value is not a number.
                self.expect_type(b'-', field, "a number")?;
                Ok(0.0)
            }
        }
    }

    /// Reads an object, calling `f` once per member with the decoded key; `f` must consume
    /// the member's value.
    pub(crate) fn object<F>(&mut self, field: &'static str, mut f: F) -> Result<(), Fail>
    where
        F: FnMut(&mut Self, &str) -> Result<(), Fail>,
    {
        self.expect_type(b'{', field, "an object")?;
        self.enter()?;
        self.pos += 1;
        if self.peek()? == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return self.syntax("expected a string key");
            }
            let key = self.string()?;
            if self.peek()? != b':' {
                return self.syntax("expected `:` after a key");
            }
            self.pos += 1;
            if key.escaped {
                f(self, &key.decode())?;
            } else {
                f(self, key.raw)?;
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.syntax("expected `,` or `}` in an object"),
            }
        }
    }

    /// Reads an array, calling `f` once per element with its index; `f` must consume it.
    pub(crate) fn array<F>(&mut self, field: &'static str, mut f: F) -> Result<(), Fail>
    where
        F: FnMut(&mut Self, usize) -> Result<(), Fail>,
    {
        self.expect_type(b'[', field, "an array")?;
        self.enter()?;
        self.pos += 1;
        if self.peek()? == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut i = 0;
        loop {
            f(self, i)?;
            i += 1;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.syntax("expected `,` or `]` in an array"),
            }
        }
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return self.syntax("nesting deeper than the limit");
        }
        Ok(())
    }

    /// Skips one value of any type, checking its syntax, and returns its raw text.
    pub(crate) fn skip(&mut self) -> Result<&'a str, Fail> {
        let start = {
            self.peek()?;
            self.pos
        };
        match self.b[self.pos] {
            b'"' => {
                self.string()?;
            }
            b'{' => self.object("", |r, _| r.skip().map(drop))?,
            b'[' => self.array("", |r, _| r.skip().map(drop))?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => {
                self.number()?;
            }
            _ => return self.syntax("expected a JSON value"),
        }
        Ok(&self.s[start..self.pos])
    }

    pub(crate) fn raw(&mut self) -> Result<RawJson<'a>, Fail> {
        self.skip().map(RawJson)
    }

    /// Scans a number; returns its end and whether it is an integer.
    fn number(&mut self) -> Result<(usize, bool), Fail> {
        let b = self.b;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return self.syntax("invalid number");
            }
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return self.syntax("invalid number");
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return self.syntax("invalid number");
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        Ok((i, integer))
    }

    /// Scans a string at the current `"`; returns the raw text between the quotes.
    fn string(&mut self) -> Result<JsonStr<'a>, Fail> {
        let b = self.b;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none of them ends the run, then byte by byte.
            while let Some(chunk) = b.get(i..i + 8) {
                let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                if has_stop_byte(word) {
                    break;
                }
                i += 8;
            }
            while i < b.len() && !STOP[b[i] as usize] {
                i += 1;
            }
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i = self.escape(i)?;
                }
                Some(_) => {
                    self.pos = i;
                    return self.syntax("control character in a string");
                }
                None => {
                    self.pos = i;
                    return self.syntax("unterminated string");
                }
            }
        }
        self.pos = i + 1;
        Ok(JsonStr {
            raw: &self.s[start..i],
            escaped,
        })
    }

    /// Checks the escape sequence at `i` (a backslash); returns the index after it.
    fn escape(&mut self, i: usize) -> Result<usize, Fail> {
        match self.b.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
            Some(b'u') => {
                let hi = self.hex_escape(i)?;
                match hi {
                    0xD800..=0xDBFF => {
                        if self.b.get(i + 6) != Some(&b'\\') || self.b.get(i + 7) != Some(&b'u') {
                            self.pos = i;
                            return self.syntax("lone leading surrogate in a \\u escape");
                        }
                        let lo = self.hex_escape(i + 6)?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            self.pos = i;
                            return self.syntax("lone leading surrogate in a \\u escape");
                        }
                        Ok(i + 12)
                    }
                    0xDC00..=0xDFFF => {
                        self.pos = i;
                        self.syntax("lone trailing surrogate in a \\u escape")
                    }
                    _ => Ok(i + 6),
                }
            }
            _ => {
                self.pos = i;
                self.syntax("invalid escape sequence")
            }
        }
    }

    /// The value of the `\uXXXX` escape at `i`.
    fn hex_escape(&mut self, i: usize) -> Result<u32, Fail> {
        let digits = self.b.get(i + 2..i + 6);
        match digits {
            Some(d) if d.iter().all(|&c| hex_val(c).is_some()) => Ok(hex4(d)),
            _ => {
                self.pos = i;
                self.syntax("invalid \\u escape")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(json: &str) -> Result<JsonStr<'_>, Fail> {
        Reader::new(json, 64).str("f")
    }

    #[test]
    fn decodes_meta_escapes() {
        let s = read_str(r#""caf\u00e9 \ud83d\ude00 https:\/\/x.com\/a \"q\" \\ \n""#).unwrap();
        assert!(s.is_escaped());
        assert_eq!(s.decode(), "café 😀 https://x.com/a \"q\" \\ \n");
    }

    #[test]
    fn stop_bytes_found_at_every_offset() {
        for stop in [b'"', b'\\', 0x00, 0x1f, 0x0a] {
            for at in 0..8 {
                let mut bytes = *b"abcdefgh";
                bytes[at] = stop;
                assert!(
                    has_stop_byte(u64::from_le_bytes(bytes)),
                    "{stop:#x} at {at}"
                );
            }
        }
        for clean in [*b"abcdefgh", *b"\x7f !#~\xff\x80 ", [0x20; 8], [0xff; 8]] {
            assert!(!has_stop_byte(u64::from_le_bytes(clean)), "{clean:?}");
        }
    }

    #[test]
    fn long_strings_with_late_escapes() {
        for n in 0..40 {
            let text = format!("\"{}\\/{}\"", "x".repeat(n), "y".repeat(n));
            let s = Reader::new(&text, 8).str("f").unwrap();
            assert_eq!(s.decode(), format!("{}/{}", "x".repeat(n), "y".repeat(n)));
            let ctl = format!("\"{}\u{1}\"", "x".repeat(n));
            assert!(Reader::new(&ctl, 8).str("f").is_err());
        }
    }

    #[test]
    fn plain_strings_borrow() {
        let s = read_str(r#""hello""#).unwrap();
        assert!(matches!(s.decode(), Cow::Borrowed("hello")));
    }

    #[test]
    fn rejects_bad_strings() {
        for bad in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\x""#,
            r#""\u12g4""#,
            "\"a\u{1}b\"",
            r#""abc"#,
        ] {
            assert!(
                matches!(read_str(bad), Err(Fail::Syntax(_))),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn skip_checks_syntax_and_returns_raw() {
        let mut r = Reader::new(r#" {"a":[1,-2.5e3,true,null,{"b":"c"}]} "#, 64);
        assert_eq!(r.skip().unwrap(), r#"{"a":[1,-2.5e3,true,null,{"b":"c"}]}"#);
        r.end().unwrap();
        for bad in [
            "[1,]",
            "{\"a\" 1}",
            "01",
            "-",
            "1.",
            "1e",
            "tru",
            "{,}",
            "[1 2]",
            "{\"a\":1,}",
        ] {
            let mut r = Reader::new(bad, 64);
            let res = r.skip().and_then(|_| r.end());
            assert!(res.is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(Reader::new(&deep, 64).skip().is_err());
        assert!(Reader::new(&deep, 128).skip().is_ok());
    }

    #[test]
    fn wrong_type_is_a_shape_error() {
        let mut r = Reader::new(r#"{"x":1}"#, 64);
        assert_eq!(
            r.str("f"),
            Err(shape(
                "f",
                Problem::WrongType {
                    expected: "a string",
                    found: "an object"
                }
            ))
        );
        // Position is unchanged, so the caller can skip the value.
        assert_eq!(r.mark(), (0, 0));
    }

    #[test]
    fn integers_from_numbers_or_digit_strings() {
        assert_eq!(
            Reader::new("1718000002397", 8).u64("t"),
            Ok(1_718_000_002_397)
        );
        assert_eq!(Reader::new("\"42\"", 8).u64("t"), Ok(42));
        assert!(matches!(Reader::new("-1", 8).u64("t"), Err(Fail::Shape(_))));
        assert!(matches!(
            Reader::new("1.5", 8).u64("t"),
            Err(Fail::Shape(_))
        ));
    }
}
