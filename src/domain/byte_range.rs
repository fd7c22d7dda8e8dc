//! Single byte ranges (`Range: bytes=...`) per RFC 9110 §14: parse, then resolve against a size.

/// One syntactically valid range-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`
    FromTo(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// What to send for a range against a representation of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole body.
    Full,
    /// 206 with `start..=end_inclusive`.
    Partial { start: u64, end_inclusive: u64 },
    /// 416.
    Unsatisfiable,
}

impl ByteRange {
    /// Parses a `Range` header. `None` means "ignore it and send the whole body":
    /// other units, syntax errors, `last < first`, and multiple ranges (which
    /// a server may decline to serve as multipart/byteranges).
    pub fn parse_header(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        match (first.trim(), last.trim()) {
            ("", suffix) => number(suffix).map(Self::Suffix),
            (first, "") => number(first).map(Self::From),
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(Self::FromTo(first, last))
            }
        }
    }

    pub fn resolve(self, size: u64) -> RangeOutcome {
        let partial = |start: u64, end: u64| RangeOutcome::Partial { start, end_inclusive: end };
        match self {
            Self::Suffix(0) => RangeOutcome::Unsatisfiable,
            // Satisfiable (RFC 9110 §14.1.1), but no 206 describes zero bytes: the whole, empty, object.
            Self::Suffix(_) if size == 0 => RangeOutcome::Full,
            Self::Suffix(n) => partial(size.saturating_sub(n), size - 1),
            Self::From(start) | Self::FromTo(start, _) if start >= size => RangeOutcome::Unsatisfiable,
            Self::From(start) => partial(start, size - 1),
            Self::FromTo(start, end) => partial(start, end.min(size - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome(header: &str, size: u64) -> RangeOutcome {
        ByteRange::parse_header(header).map_or(RangeOutcome::Full, |r| r.resolve(size))
    }

    #[test]
    fn rfc_examples() {
        let p = |start, end_inclusive| RangeOutcome::Partial { start, end_inclusive };
        assert_eq!(outcome("bytes=0-499", 10_000), p(0, 499));
        assert_eq!(outcome("bytes=500-999", 10_000), p(500, 999));
        assert_eq!(outcome("bytes=-500", 10_000), p(9_500, 9_999));
        assert_eq!(outcome("bytes=9500-", 10_000), p(9_500, 9_999));
        assert_eq!(outcome("bytes=0-0", 1), p(0, 0));
        assert_eq!(outcome("bytes=0-99999", 10), p(0, 9));
        assert_eq!(outcome("bytes=-20", 10), p(0, 9));
    }

    #[test]
    fn garbage_is_ignored_or_unsatisfiable() {
        assert_eq!(outcome("bytes=5-2", 10), RangeOutcome::Full);
        assert_eq!(outcome("bytes=0-1,4-5", 10), RangeOutcome::Full);
        assert_eq!(outcome("items=0-1", 10), RangeOutcome::Full);
        assert_eq!(outcome("bytes=a-b", 10), RangeOutcome::Full);
        assert_eq!(outcome("bytes=+1-2", 10), RangeOutcome::Full);
        assert_eq!(outcome("bytes=-0", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(outcome("bytes=10-", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(outcome("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(outcome("bytes=-5", 0), RangeOutcome::Full, "an empty body's suffix: the (empty) whole");
        assert_eq!(outcome("bytes=-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(outcome("bytes=99999999999999999999999-", 10), RangeOutcome::Full);
    }

    proptest! {
        #[test]
        fn partial_ranges_lie_inside_the_body(header in "bytes=[0-9]{0,4}-[0-9]{0,4}", size in 0u64..5000) {
            if let RangeOutcome::Partial { start, end_inclusive } = outcome(&header, size) {
                prop_assert!(start <= end_inclusive && end_inclusive < size);
            }
        }

        #[test]
        fn parse_never_panics(header in "\\PC{0,30}") {
            let _ = ByteRange::parse_header(&header);
        }
    }
}
