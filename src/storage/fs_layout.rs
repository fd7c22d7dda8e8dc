//! Reversible, contained mapping from blob keys to relative filesystem paths.
//!
//! Every key segment (split on `/`) is percent-encoded so that only
//! `[A-Za-z0-9_-]` and `%XX` remain: no component can be `.`, `..`, hold a
//! separator, a backslash or a NUL. Markers that encoding never produces keep
//! the mapping unambiguous: `%` alone is an empty segment, a trailing `~`
//! continues a segment too long for one file name, and `.blob` ends a file so
//! the keys `a` and `a/b` can coexist.

use std::path::{Component, Path, PathBuf};

const FILE_SUFFIX: &str = ".blob";
const CONTINUATION: char = '~';
const EMPTY_SEGMENT: &str = "%";
/// Longest component we write; well under the 255-byte limit of common filesystems.
const MAX_COMPONENT: usize = 200;

fn keep(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// Encodes one segment into units (`a` or `%2F`) so chunking never splits an escape.
fn encode_units(segment: &str) -> Vec<String> {
    segment.bytes().map(|byte| if keep(byte) { (byte as char).to_string() } else { format!("%{byte:02X}") }).collect()
}

/// The relative path for `key`. The key must be non-empty.
pub(crate) fn key_to_path(key: &str) -> PathBuf {
    let mut path = PathBuf::new();
    let segments: Vec<&str> = key.split('/').collect();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        let mut components = chunk_segment(segment);
        if index == last
            && let Some(final_component) = components.last_mut()
        {
            final_component.push_str(FILE_SUFFIX);
        }
        path.extend(components);
    }
    path
}

fn chunk_segment(segment: &str) -> Vec<String> {
    if segment.is_empty() {
        return vec![EMPTY_SEGMENT.to_owned()];
    }
    let mut chunks = vec![String::new()];
    for unit in encode_units(segment) {
        let current = chunks.last().map_or(0, String::len);
        if current + unit.len() > MAX_COMPONENT {
            if let Some(full) = chunks.last_mut() {
                full.push(CONTINUATION);
            }
            chunks.push(String::new());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.push_str(&unit);
        }
    }
    chunks
}

/// The key stored at `relative`, or `None` for paths this layout never writes.
pub(crate) fn path_to_key(relative: &Path) -> Option<String> {
    let mut raw = Vec::new();
    let mut components = relative.components().peekable();
    let mut saw_file = false;
    while let Some(component) = components.next() {
        let Component::Normal(name) = component else {
            return None;
        };
        let mut name = name.to_str()?;
        let is_last = components.peek().is_none();
        if is_last {
            name = name.strip_suffix(FILE_SUFFIX)?;
            saw_file = true;
        }
        if let Some(continued) = name.strip_suffix(CONTINUATION) {
            if is_last {
                return None;
            }
            decode_into(continued, &mut raw)?;
            continue;
        }
        if name != EMPTY_SEGMENT {
            decode_into(name, &mut raw)?;
        }
        if !is_last {
            raw.push(b'/');
        }
    }
    if !saw_file {
        return None;
    }
    String::from_utf8(raw).ok()
}

fn decode_into(encoded: &str, out: &mut Vec<u8>) -> Option<()> {
    let bytes = encoded.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if keep(bytes[i]) {
            out.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    Some(())
}

/// The directory holding everything under `prefix`, as deep as its complete segments go.
pub(crate) fn prefix_dir(prefix: &str) -> PathBuf {
    match prefix.rfind('/') {
        Some(end) => prefix[..end].split('/').flat_map(chunk_segment).collect(),
        None => PathBuf::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_contained(path: &Path) {
        for component in path.components() {
            let Component::Normal(name) = component else {
                panic!("non-normal component in {path:?}");
            };
            let name = name.to_str().expect("ascii");
            assert!(name != "." && name != "..", "{path:?}");
            assert!(!name.contains(['\\', '\0', '/']), "{path:?}");
            assert!(name.len() <= MAX_COMPONENT + FILE_SUFFIX.len() + 1, "{path:?}");
        }
    }

    #[test]
    fn hostile_keys_stay_inside() {
        for key in ["../../etc/passwd", "a\\b", "..", ".", "/abs", "a//b", "a/", "..\\..\\x", "\u{0}x"] {
            let path = key_to_path(key);
            assert_contained(&path);
            assert_eq!(path_to_key(&path).as_deref(), Some(key));
        }
    }

    #[test]
    fn file_and_directory_keys_coexist() {
        assert_ne!(key_to_path("a").parent(), Some(Path::new("a")));
        assert!(key_to_path("a/b").starts_with("a"));
        assert_eq!(key_to_path("a"), PathBuf::from("a.blob"));
    }

    #[test]
    fn long_segments_are_chunked() {
        let key = "é".repeat(500);
        let path = key_to_path(&key);
        assert!(path.components().count() > 1);
        assert_contained(&path);
        assert_eq!(path_to_key(&path), Some(key));
    }

    #[test]
    fn foreign_paths_are_ignored() {
        assert_eq!(path_to_key(Path::new("a/b")), None);
        assert_eq!(path_to_key(Path::new("x.y.blob")), None);
        assert_eq!(path_to_key(Path::new("a~.blob")), None);
    }

    #[test]
    fn prefix_dir_uses_complete_segments() {
        assert_eq!(prefix_dir("photos/2024/img"), PathBuf::from("photos/2024"));
        assert_eq!(prefix_dir("photos"), PathBuf::new());
        assert_eq!(prefix_dir("a.b/"), PathBuf::from("a%2Eb"));
    }

    proptest! {
        #[test]
        fn roundtrip_and_containment(key in "\\PC{1,300}") {
            let path = key_to_path(&key);
            assert_contained(&path);
            prop_assert_eq!(path_to_key(&path), Some(key));
        }

        #[test]
        fn roundtrip_with_separators(segments in proptest::collection::vec("[a./\\\\%~ ]{0,6}", 1..6)) {
            let key = segments.join("/");
            prop_assume!(!key.is_empty());
            let path = key_to_path(&key);
            assert_contained(&path);
            prop_assert_eq!(path_to_key(&path), Some(key));
        }

        #[test]
        fn prefix_dir_contains_every_key_under_prefix(key in "[a-c/]{1,12}", cut in 0usize..12) {
            let cut = cut.min(key.len());
            let prefix = &key[..cut];
            prop_assert!(key_to_path(&key).starts_with(prefix_dir(prefix)));
        }
    }
}
