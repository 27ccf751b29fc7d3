//! Recognising active content (SVG, HTML, XML, scripts) from a file's first bytes, which the
//! magic-number table of `infer` does not cover: an SVG has no magic number, and a browser
//! runs the scripts in it. The policy checks what is found here like any other detected type,
//! so `photo.png` holding `<svg><script>` is refused whatever its name says.

/// Active content found at the start of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Markup {
    /// Its MIME type.
    pub(crate) mime: &'static str,
    /// The extension such a file has.
    pub(crate) extension: &'static str,
}

const SVG: Markup = Markup {
    mime: "image/svg+xml",
    extension: "svg",
};
const HTML: Markup = Markup {
    mime: "text/html",
    extension: "html",
};
const XML: Markup = Markup {
    mime: "text/xml",
    extension: "xml",
};
const SCRIPT: Markup = Markup {
    mime: "text/x-shellscript",
    extension: "sh",
};

/// Elements that make a document HTML when they come first (as browsers sniff).
const HTML_ELEMENTS: [&str; 21] = [
    "html", "head", "body", "script", "iframe", "object", "embed", "style", "title", "div", "a",
    "b", "p", "br", "h1", "table", "font", "form", "img", "meta", "base",
];

/// The active content `head` starts with, if any: after a byte-order mark and white space, a
/// shebang line, or markup whose first element (after any XML declaration, processing
/// instructions, comments and doctype) is `svg`, an HTML element, or anything after an XML
/// declaration. A doctype naming HTML or SVG decides on its own.
pub(crate) fn markup(head: &[u8]) -> Option<Markup> {
    let mut rest = skip_space(strip_bom(head));
    if rest.starts_with(b"#!") {
        return Some(SCRIPT);
    }
    let mut xml = false;
    loop {
        if !rest.starts_with(b"<") {
            return xml.then_some(XML);
        }
        if let Some(after) = strip_prefix_ci(rest, b"<?xml") {
            xml = true;
            rest = skip_space(after_marker(after, b"?>")?);
        } else if rest.starts_with(b"<?") {
            rest = skip_space(after_marker(&rest[2..], b"?>")?);
        } else if rest.starts_with(b"<!--") {
            rest = skip_space(after_marker(&rest[4..], b"-->")?);
        } else if let Some(after) = strip_prefix_ci(rest, b"<!doctype") {
            let name = element_name(skip_space(after));
            if name.eq_ignore_ascii_case(b"html") {
                return Some(HTML);
            }
            if name.eq_ignore_ascii_case(b"svg") {
                return Some(SVG);
            }
            xml = true;
            rest = skip_space(after_marker(after, b">")?);
        } else {
            let name = element_name(&rest[1..]);
            // An XML namespace prefix (`svg:svg`) names the same element.
            let local = name
                .iter()
                .rposition(|&b| b == b':')
                .map_or(name, |i| &name[i + 1..]);
            if local.eq_ignore_ascii_case(b"svg") {
                return Some(SVG);
            }
            if HTML_ELEMENTS
                .iter()
                .any(|e| local.eq_ignore_ascii_case(e.as_bytes()))
            {
                return Some(HTML);
            }
            return xml.then_some(XML);
        }
    }
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

fn skip_space(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0C'))
        .count();
    &b[n..]
}

fn strip_prefix_ci<'a>(b: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = b.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &b[prefix.len()..])
}

/// What follows the first `marker`; `None` when the head ends before it.
fn after_marker<'a>(b: &'a [u8], marker: &[u8]) -> Option<&'a [u8]> {
    b.windows(marker.len())
        .position(|w| w == marker)
        .map(|i| &b[i + marker.len()..])
}

/// The name at the start of `b` (letters, digits, `-`, `_`, `:`, `.`).
fn element_name(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':' | b'.'))
        .count();
    &b[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_in_its_usual_shapes() {
        for head in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"[..],
            b"\xEF\xBB\xBF  \n<svg>",
            b"<?xml version=\"1.0\"?>\n<svg>",
            b"<?xml version=\"1.0\"?><!-- made by hand --><!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\"><svg>",
            b"<!DOCTYPE svg><x/>",
            b"<?xml-stylesheet href=\"a.css\"?><SVG>",
            b"<svg:svg xmlns:svg=\"http://www.w3.org/2000/svg\">",
        ] {
            assert_eq!(markup(head), Some(SVG), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn html_xml_and_scripts() {
        assert_eq!(markup(b"<!doctype html><p>hi"), Some(HTML));
        assert_eq!(markup(b"<!-- x --><script>alert(1)</script>"), Some(HTML));
        assert_eq!(markup(b"  <HTML>"), Some(HTML));
        assert_eq!(markup(b"<iframe src=x>"), Some(HTML));
        assert_eq!(markup(b"<?xml version=\"1.0\"?><invoice/>"), Some(XML));
        assert_eq!(markup(b"#!/bin/sh\nrm -rf /"), Some(SCRIPT));
    }

    #[test]
    fn other_content_is_not_markup() {
        for head in [
            &b"\x89PNG\r\n\x1a\n"[..],
            b"%PDF-1.7",
            b"hello <svg>",
            b"",
            b"<",
            b"<?xml never closed",
            b"<!-- never closed <svg>",
            b"<invoice/>",
            b"<svgx>",
        ] {
            assert_eq!(markup(head), None, "{}", String::from_utf8_lossy(head));
        }
    }
}
