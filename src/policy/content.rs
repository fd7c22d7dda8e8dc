//! How stored content is typed and served: the content type of an upload
//! (the client's, else the name confirmed by magic bytes) and whether a
//! browser may render it inline. Anything a browser could execute — HTML, SVG,
//! XML, JavaScript, or an unknown type — is always an attachment.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

pub const OCTET_STREAM: &str = "application/octet-stream";

/// Types a browser renders without running code; the only ones served inline.
fn renders_safely(content_type: &str) -> bool {
    let essence = essence(content_type);
    matches!(
        essence.as_str(),
        "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "image/bmp"
            | "application/pdf"
            | "text/plain"
    ) || essence.starts_with("video/")
        || essence.starts_with("audio/")
}

/// `type/subtype` lowercased, parameters dropped.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Types whose files carry no magic number; the name is all there is to go on.
fn is_textual(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/json" | "application/xml" | "image/svg+xml" | "application/javascript" | "application/x-yaml"
        )
}

/// The type of an upload without a client-given type: what the first bytes
/// prove, else the name's guess for formats without magic numbers, else octet-stream.
pub fn infer_content_type(file_name: &str, head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let guess = mime_guess::from_path(file_name).first_raw().unwrap_or(OCTET_STREAM);
    if is_textual(guess) { guess.to_owned() } else { OCTET_STREAM.to_owned() }
}

/// A client-given `Content-Type`, if it is a well-formed media type of sane length.
pub fn valid_content_type(value: &str) -> bool {
    value.len() <= 255 && value.parse::<mime::Mime>().is_ok()
}

/// What `filename*` may leave unescaped (RFC 8187 attr-char).
const ATTR_CHAR_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'{')
    .add(b'}');

/// `Content-Disposition` per RFC 6266: `inline` only for safe types unless a
/// download is forced; an ASCII `filename` fallback plus the exact UTF-8 `filename*`.
pub fn content_disposition(content_type: &str, file_name: &str, force_download: bool) -> String {
    let kind = if !force_download && renders_safely(content_type) { "inline" } else { "attachment" };
    let fallback: String = file_name
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let encoded = utf8_percent_encode(file_name, ATTR_CHAR_ESCAPES);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn magic_bytes_win_over_the_name() {
        assert_eq!(infer_content_type("photo.png", PNG), "image/png");
        assert_eq!(infer_content_type("notes.txt", PNG), "image/png");
        assert_eq!(infer_content_type("fake.png", b"hello, not an image"), OCTET_STREAM);
        assert_eq!(infer_content_type("notes.txt", b"hello"), "text/plain");
        assert_eq!(infer_content_type("page.html", b"<html>"), "text/html");
        assert_eq!(infer_content_type("logo.svg", b"<svg/>"), "image/svg+xml");
        assert_eq!(infer_content_type("blob", b"\x00\x01"), OCTET_STREAM);
    }

    #[test]
    fn executable_types_are_attachments() {
        for unsafe_type in [
            "text/html",
            "image/svg+xml",
            "application/xml",
            "text/xml",
            "application/javascript",
            "text/javascript",
            "application/octet-stream",
            "application/x-unknown",
            "TEXT/HTML; charset=utf-8",
        ] {
            assert!(content_disposition(unsafe_type, "x", false).starts_with("attachment;"), "{unsafe_type}");
        }
        for safe in ["image/png", "video/mp4", "audio/mpeg", "application/pdf", "text/plain; charset=utf-8"] {
            assert!(content_disposition(safe, "x", false).starts_with("inline;"), "{safe}");
            assert!(content_disposition(safe, "x", true).starts_with("attachment;"), "forced: {safe}");
        }
    }

    #[test]
    fn file_names_are_encoded_per_rfc_6266() {
        assert_eq!(
            content_disposition("image/png", "résumé \"final\".png", false),
            "inline; filename=\"r_sum_ _final_.png\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.png"
        );
    }

    proptest! {
        #[test]
        fn header_values_are_always_plain_ascii(name in "\\PC{0,40}", kind in "[a-z]{1,8}/[a-z+.-]{1,12}") {
            let value = content_disposition(&kind, &name, false);
            prop_assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{}", value);
            prop_assert_eq!(value.matches('"').count(), 2);
        }

        #[test]
        fn inline_only_for_safe_types(kind in "(text|application|image)/[a-z+.-]{1,12}") {
            if content_disposition(&kind, "f", false).starts_with("inline") {
                prop_assert!(renders_safely(&kind));
                prop_assert!(!kind.contains("html") && !kind.contains("svg") && !kind.contains("xml") && !kind.contains("script"));
            }
        }
    }
}
