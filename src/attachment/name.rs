//! File names from outside: made safe to show and to store, and their extensions read the way
//! an operating system would.

/// Longest sanitised name, in bytes (the limit of common file systems).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// The name used when nothing usable is left of the original.
pub const FALLBACK_NAME: &str = "attachment";

/// Longest extension kept whole when a name is shortened.
const MAX_KEPT_EXTENSION_BYTES: usize = 16;

/// Windows device names, which must not be a file's stem on any file system a host may use.
const DEVICE_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Whether `c` reorders or hides text: bidirectional controls (the right-to-left override
/// that makes `exe.jpg` display as `gpj.exe`), zero-width characters and other invisible
/// format characters.
pub fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Whether `name` holds a character that reorders or hides text (see [`is_invisible_or_bidi`]).
pub fn has_deceptive_characters(name: &str) -> bool {
    name.chars().any(is_invisible_or_bidi)
}

/// A safe version of `name` for display and storage.
///
/// - Only the last path component is kept (`../../etc/passwd` → `passwd`, `C:\x` → `x`).
/// - Control characters, bidirectional overrides and invisible characters are removed.
/// - Characters reserved on Windows (`<>:"|?*`) become `_`.
/// - Leading dots and spaces (hidden files, `..`) and trailing dots and spaces (which Windows
///   drops, turning `virus.exe.` into `virus.exe`) are removed.
/// - Windows device names (`CON`, `nul.txt`) get a leading `_`.
/// - Names longer than [`MAX_FILE_NAME_BYTES`] are shortened, keeping the extension.
/// - A name with nothing left becomes [`FALLBACK_NAME`].
///
/// The result is never empty, holds no path separator, control or bidirectional character,
/// and `sanitize_file_name(sanitize_file_name(x)) == sanitize_file_name(x)`.
///
/// ```
/// use messenger_channel::attachment::sanitize_file_name;
///
/// assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
/// assert_eq!(sanitize_file_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
/// assert_eq!(sanitize_file_name("report.pdf. . "), "report.pdf");
/// assert_eq!(sanitize_file_name("...."), "attachment");
/// ```
pub fn sanitize_file_name(name: &str) -> String {
    let last = name
        .rsplit(['/', '\\'])
        .find(|part| {
            part.chars()
                .any(|c| !c.is_control() && !is_invisible_or_bidi(c))
        })
        .unwrap_or("");
    let mut clean: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible_or_bidi(c))
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    clean = trim_name(&clean).to_owned();
    if is_device_name(&clean) {
        clean.insert(0, '_');
    }
    if clean.len() > MAX_FILE_NAME_BYTES {
        clean = shorten(&clean);
    }
    if clean.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    clean
}

fn trim_name(name: &str) -> &str {
    name.trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
}

fn is_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    DEVICE_NAMES.iter().any(|d| d.eq_ignore_ascii_case(stem))
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn shorten(name: &str) -> String {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= MAX_KEPT_EXTENSION_BYTES => {
            (stem, Some(ext))
        }
        _ => (name, None),
    };
    let room = MAX_FILE_NAME_BYTES - ext.map_or(0, |e| e.len() + 1);
    let stem = trim_name(&stem[..floor_char_boundary(stem, room.min(stem.len()))]);
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

/// The extension of a (sanitised) name, lower-cased, without the dot: `Photo.JPG` → `jpg`.
/// `None` when the name has no dot or ends with one.
pub fn extension(name: &str) -> Option<String> {
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.trim();
    (!ext.is_empty()).then(|| ext.to_lowercase())
}

/// The extensions before the last one (`invoice.pdf.exe` → `pdf`; `a.tar.gz` → `tar`),
/// lower-cased. The stem before the first dot is not an extension.
pub fn inner_extensions(name: &str) -> impl Iterator<Item = String> + '_ {
    let mut parts: Vec<&str> = name.split('.').collect();
    parts.pop();
    parts
        .into_iter()
        .skip(1)
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricky_names() {
        let cases: &[(&str, &str)] = &[
            ("invoice.pdf", "invoice.pdf"),
            ("invoice.pdf.exe", "invoice.pdf.exe"),
            ("report.pdf.", "report.pdf"),
            ("report.pdf. . ", "report.pdf"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("noextension", "noextension"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("\u{2067}photo\u{2069}.jpg", "photo.jpg"),
            ("zero\u{200B}width.png", "zerowidth.png"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
            ("C:\\x", "x"),
            ("C:x.txt", "C_x.txt"),
            ("/abs", "abs"),
            ("dir/", "dir"),
            ("tab\there\nnew\u{0}line.txt", "tabherenewline.txt"),
            ("a<b>c:d\"e|f?g*h.txt", "a_b_c_d_e_f_g_h.txt"),
            ("....", FALLBACK_NAME),
            (".", FALLBACK_NAME),
            ("..", FALLBACK_NAME),
            ("", FALLBACK_NAME),
            ("\u{202E}", FALLBACK_NAME),
            (".bashrc", "bashrc"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1.tar.gz", "_com1.tar.gz"),
            ("console.txt", "console.txt"),
            ("Café menu.pdf", "Café menu.pdf"),
            ("報告書.docx", "報告書.docx"),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_file_name(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn overlong_names_keep_their_extension() {
        let long = format!("{}.pdf", "a".repeat(400));
        let s = sanitize_file_name(&long);
        assert_eq!(s.len(), MAX_FILE_NAME_BYTES);
        assert!(s.ends_with("aaa.pdf"));
        // Multi-byte characters are cut on a character boundary.
        let wide = format!("{}.txt", "é".repeat(300));
        let s = sanitize_file_name(&wide);
        assert!(s.len() <= MAX_FILE_NAME_BYTES);
        assert_eq!(extension(&s).as_deref(), Some("txt"));
        // No usable extension: cut plainly.
        let s = sanitize_file_name(&"b".repeat(1000));
        assert_eq!(s.len(), MAX_FILE_NAME_BYTES);
        assert_eq!(sanitize_file_name(&s), s);
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("Photo.JPG").as_deref(), Some("jpg"));
        assert_eq!(extension("invoice.pdf.exe").as_deref(), Some("exe"));
        assert_eq!(extension("noext"), None);
        assert_eq!(extension("trailing."), None);
        let inner: Vec<_> = inner_extensions("invoice.PDF.exe").collect();
        assert_eq!(inner, ["pdf"]);
        assert_eq!(inner_extensions("a.b.c.d").collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(inner_extensions("plain.txt").count(), 0);
    }
}
