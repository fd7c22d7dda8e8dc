//! Fuzz harness (proptest, stable Rust): the parsers that see raw client
//! input — object keys, bucket names, `Range` headers, presign signature
//! query strings and image headers — must never panic, and what they accept
//! must satisfy their rules. `cargo test --test fuzz` runs a short pass;
//! `FUZZ_CASES=200000 cargo test --release --test fuzz` a long one.
//! Multipart form bodies are fuzzed over HTTP in `tests/api/fuzz_forms.rs`.

use coffer::domain::{BucketName, ByteRange, ObjectKey, RangeOutcome};
use coffer::media::thumbnail::{ImageLimits, ThumbError, probe};
use coffer::service::signing::SignedParams;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

/// Strings biased towards the characters the parsers care about.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("-".to_owned()),
        Just("=".to_owned()),
        Just("&".to_owned()),
        Just(",".to_owned()),
        Just("bytes=".to_owned()),
        Just("X-Coffer-".to_owned()),
        Just("\0".to_owned()),
        Just("%2F".to_owned()),
        "[0-9]{1,25}",
        "[a-zA-Z]{1,8}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn object_keys_accepted_obey_the_contract(raw in prop_oneof![tricky_text(), any::<String>()]) {
        if let Ok(key) = ObjectKey::parse(&raw) {
            let text = key.as_str();
            prop_assert!(!text.is_empty() && text.len() <= 1024);
            prop_assert!(!text.starts_with('/'));
            prop_assert!(!text.chars().any(char::is_control));
            let trimmed = text.strip_suffix('/').unwrap_or(text);
            prop_assert!(trimmed.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
        }
    }

    #[test]
    fn bucket_names_accepted_obey_s3_rules(raw in prop_oneof![tricky_text(), "[a-z0-9.-]{0,70}"]) {
        if let Ok(name) = BucketName::parse(&raw) {
            let text = name.as_str();
            prop_assert!((3..=63).contains(&text.len()));
            prop_assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'));
            prop_assert!(text.as_bytes()[0].is_ascii_alphanumeric());
            prop_assert!(text.as_bytes()[text.len() - 1].is_ascii_alphanumeric());
        }
    }

    #[test]
    fn ranges_resolve_inside_the_object(
        raw in prop_oneof![tricky_text(), "bytes= ?[0-9]{0,21} ?- ?[0-9]{0,21}"],
        size in prop_oneof![Just(0u64), Just(1u64), any::<u64>(), 0u64..10_000],
    ) {
        if let Some(range) = ByteRange::parse_header(&raw) {
            match range.resolve(size) {
                RangeOutcome::Partial { start, end_inclusive } => {
                    prop_assert!(start <= end_inclusive && end_inclusive < size);
                }
                RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
            }
        }
    }

    #[test]
    fn signature_queries_never_panic_and_round_trip(raw in tricky_text(), expires in any::<u32>(), signer in 1i64..1_000_000, sig in "[0-9a-f]{64}") {
        let _ = SignedParams::from_query(&raw);
        let query = format!("X-Coffer-Expires={expires}&X-Coffer-Signer={signer}&X-Coffer-Key=-&X-Coffer-KeyId=k1&X-Coffer-Signature={sig}");
        let parsed = SignedParams::from_query(&query);
        prop_assert!(matches!(parsed, Ok(Some(_))), "{query}");
        if let Ok(Some(params)) = parsed {
            prop_assert_eq!(params.to_query(), query.clone());
        }
        // Any one duplicated or truncated field is refused, never accepted.
        let duplicated = format!("{query}&X-Coffer-Signer=2");
        prop_assert!(SignedParams::from_query(&duplicated).is_err());
    }

    #[test]
    fn image_headers_never_panic_and_respect_the_limits(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(w, h, tail)| png_header(w, h, &tail)),
            (any::<u16>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(w, h, tail)| gif_header(w, h, &tail)),
            (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(w, h, tail)| bmp_header(w, h, &tail)),
        ],
    ) {
        let limits = ImageLimits { max_pixels: 50_000_000, max_side: 16_384, max_alloc: 256 * 1024 * 1024 };
        match probe(&bytes, &limits) {
            Ok((_, width, height)) => {
                prop_assert!(width.max(height) <= limits.max_side);
                prop_assert!(u64::from(width) * u64::from(height) <= limits.max_pixels);
            }
            Err(ThumbError::Unsupported | ThumbError::TooLarge { .. } | ThumbError::Undecodable(_)) => {}
        }
    }
}

fn png_header(width: u32, height: u32, tail: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&[8, 6, 0, 0, 0]);
    out.extend_from_slice(tail);
    out
}

fn gif_header(width: u16, height: u16, tail: &[u8]) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(tail);
    out
}

fn bmp_header(width: u32, height: u32, tail: &[u8]) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(tail);
    out
}
