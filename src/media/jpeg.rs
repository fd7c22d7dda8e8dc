//! JPEG through libjpeg-turbo's code (the `mozjpeg` crate, built from its
//! vendored C sources by `cc`, so no system package is needed): DCT-scaled
//! decoding at 1/8, 1/4, 1/2 or full size, and encoding with libjpeg-turbo's
//! own defaults — the same decoder and encoder libvips uses, several times
//! faster than pure-Rust decoding at these scales.
//!
//! libjpeg reports errors by unwinding out of its callbacks; every call here
//! runs under `catch_unwind`, and truncated data (which libjpeg would pad
//! with grey) is refused.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::decompress::DecompressStarted;
use mozjpeg::{ColorSpace, Compress, Decompress, Marker};

use super::thumbnail::{ThumbError, fit};

/// Scans a JPEG may have: a progressive one has about ten. libjpeg decodes
/// every scan over the whole image, so thousands of them in a small file
/// would hold a render slot for minutes (libjpeg-turbo's `-maxscans`).
pub const MAX_SCANS: usize = 100;

/// Refuses a JPEG with more than `MAX_SCANS` start-of-scan markers,
/// finding markers as libjpeg does (`next_marker`): bytes before an 0xFF are
/// skipped, a run of 0xFF is fill, 0xFF 0x00 is data; a segment's payload is
/// skipped by its length, so none of it (an embedded EXIF thumbnail, say) is
/// taken for a marker. Whatever libjpeg would read as a scan is counted.
pub fn check_scans(bytes: &[u8]) -> Result<(), ThumbError> {
    let mut scans = 0;
    let mut at = 2; // after SOI
    while let Some(code_at) = next_marker(bytes, at) {
        at = code_at + 1;
        match bytes[code_at] {
            0xD9 => break,
            0x01 | 0xD0..=0xD8 => {} // no length
            code => {
                let Some(length) = bytes.get(at..at + 2) else { break };
                if code == 0xDA {
                    scans += 1;
                    if scans > MAX_SCANS {
                        return Err(ThumbError::Undecodable(format!("more than {MAX_SCANS} scans")));
                    }
                }
                at += usize::from(u16::from_be_bytes([length[0], length[1]])).max(2);
            }
        }
    }
    Ok(())
}

/// Where the code of the next marker at or after `at` is.
fn next_marker(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        while *bytes.get(at)? != 0xFF {
            at += 1;
        }
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        if bytes[at] != 0x00 {
            return Some(at);
        }
        at += 1;
    }
}

/// Decodes `bytes` (a `width`×`height` JPEG) at the smallest DCT scale that
/// still leaves at least twice `size` on both sides, with its EXIF
/// orientation; `None` for colour spaces left to the general decoder (CMYK,
/// YCCK).
pub fn decode_scaled(
    bytes: &[u8],
    width: u32,
    height: u32,
    size: u32,
) -> Result<Option<(DynamicImage, Orientation)>, ThumbError> {
    let (wanted_w, wanted_h) = fit(width, height, size.saturating_mul(2));
    let numerator =
        [1u8, 2, 4].into_iter().find(|&n| scaled(width, n) >= wanted_w && scaled(height, n) >= wanted_h).unwrap_or(8);
    guarded(|| {
        let ran_out = Rc::new(Cell::new(false));
        let source = EndWatch { rest: bytes, ran_out: Rc::clone(&ran_out) };
        let mut decoder = Decompress::builder().with_markers(&[Marker::APP(1)]).from_reader(source)?;
        let orientation = decoder
            .markers()
            .find_map(|marker| marker.data.strip_prefix(b"Exif\0\0").and_then(Orientation::from_exif_chunk))
            .unwrap_or(Orientation::NoTransforms);
        decoder.scale(numerator);
        let image = match decoder.color_space() {
            ColorSpace::JCS_GRAYSCALE => {
                let (w, h, pixels) = read_all(decoder.grayscale()?)?;
                GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
            }
            ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => {
                let (w, h, pixels) = read_all(decoder.rgb()?)?;
                RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
            }
            _ => return Ok(None),
        };
        if ran_out.get() {
            return Err(std::io::Error::other("the JPEG data ends early (truncated file)"));
        }
        let image = image.ok_or_else(|| std::io::Error::other("short pixel data"))?;
        Ok(Some((image, orientation)))
    })
}

/// Every scanline of a started decompression: width, height and pixels.
fn read_all<R: BufRead>(mut started: DecompressStarted<R>) -> std::io::Result<(u32, u32, Vec<u8>)> {
    let (width, height) = (started.width() as u32, started.height() as u32);
    let pixels = started.read_scanlines()?;
    started.finish()?;
    Ok((width, height, pixels))
}

/// `side` at `numerator`/8, rounded up as libjpeg does.
fn scaled(side: u32, numerator: u8) -> u32 {
    (side * u32::from(numerator)).div_ceil(8)
}

/// Baseline JPEG at `quality` with libjpeg-turbo's defaults (4:2:0 chroma,
/// standard tables): byte for byte what libjpeg-turbo itself writes.
pub fn encode(image: &RgbImage, quality: u8) -> Result<Vec<u8>, ThumbError> {
    guarded(|| {
        let mut compress = Compress::new(ColorSpace::JCS_RGB);
        compress.set_fastest_defaults();
        compress.set_size(image.width() as usize, image.height() as usize);
        compress.set_quality(f32::from(quality));
        let mut started = compress.start_compress(Vec::new())?;
        started.write_scanlines(image.as_raw())?;
        started.finish()
    })
}

/// Runs libjpeg code, turning its unwinding errors and I/O errors into
/// `Undecodable`.
fn guarded<T>(work: impl FnOnce() -> std::io::Result<T>) -> Result<T, ThumbError> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ThumbError::Undecodable(error.to_string())),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "libjpeg failed".to_owned());
            Err(ThumbError::Undecodable(message))
        }
    }
}

/// The JPEG bytes as libjpeg's source, noting whether libjpeg asked for more
/// after the last byte: a complete file ends at its EOI marker, so that only
/// happens when the data is cut short (libjpeg would pad it with grey).
struct EndWatch<'a> {
    rest: &'a [u8],
    ran_out: Rc<Cell<bool>>,
}

impl Read for EndWatch<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let read = self.fill_buf()?.read(out)?;
        self.consume(read);
        Ok(read)
    }
}

impl BufRead for EndWatch<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.rest.is_empty() {
            self.ran_out.set(true);
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amount: usize) {
        self.rest = &self.rest[amount.min(self.rest.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 128]));
        encode(&image, 90).expect("encodes")
    }

    /// `bytes` with its scan (header and entropy-coded data, up to EOI)
    /// `times` times more, each after `between`.
    fn more_scans(bytes: &[u8], times: usize, between: &[u8]) -> Vec<u8> {
        let sos = bytes.windows(2).position(|pair| pair == [0xFF, 0xDA]).expect("a scan");
        let eoi = bytes.len() - 2;
        let mut out = bytes[..eoi].to_vec();
        for _ in 0..times {
            out.extend_from_slice(between);
            out.extend_from_slice(&bytes[sos..eoi]);
        }
        out.extend_from_slice(&bytes[eoi..]);
        out
    }

    #[test]
    fn jpegs_with_too_many_scans_are_refused_before_decoding() {
        let bytes = jpeg(64, 32);
        assert_eq!(check_scans(&bytes), Ok(()));
        let too_many = |between: &[u8]| matches!(check_scans(&more_scans(&bytes, MAX_SCANS, between)), Err(ThumbError::Undecodable(why)) if why.contains("scans"));
        assert!(too_many(b""));
        // What libjpeg skips or reads past must not hide a scan from the count:
        assert!(too_many(b"\x00\x17"), "stray bytes between segments");
        assert!(too_many(b"\xFF\xFE\x00\x02\x00"), "a comment, then a stray byte");
        assert!(too_many(b"\xFF\xFF\xD0\x12"), "fill, a restart marker, data");
        assert!(too_many(b"\xFF\xFF\x00\x12\x34"), "fill before a stuffed zero");
        assert_eq!(check_scans(&more_scans(&bytes, MAX_SCANS - 1, b"")), Ok(()), "exactly MAX_SCANS");
        // And `render` asks before decoding.
        let limits = super::super::thumbnail::ImageLimits { max_pixels: 1 << 20, max_side: 4096, max_alloc: 64 << 20 };
        let refused = super::super::thumbnail::render(
            &more_scans(&bytes, MAX_SCANS, b""),
            16,
            super::super::thumbnail::ThumbFormat::Webp,
            &limits,
        );
        assert!(matches!(refused, Err(ThumbError::Undecodable(why)) if why.contains("scans")));
        for hostile in [
            &b"\xFF\xD8"[..],
            b"\xFF\xD8\xFF",
            b"\xFF\xD8\xFF\xDA",
            b"\xFF\xD8\xFF\xDA\x00",
            b"\xFF\xD8\xFF\xE1\x00\x00",
        ] {
            assert_eq!(check_scans(hostile), Ok(()), "{hostile:?}");
        }
    }

    #[test]
    fn decodes_at_the_smallest_scale_keeping_twice_the_target() {
        let bytes = jpeg(2000, 1000);
        let (image, _) = decode_scaled(&bytes, 2000, 1000, 128).expect("decodes").expect("handled");
        assert_eq!((image.width(), image.height()), (500, 250), "1/4 keeps ≥ 256 px; 1/8 would not");
        let (image, _) = decode_scaled(&bytes, 2000, 1000, 64).expect("decodes").expect("handled");
        assert_eq!((image.width(), image.height()), (250, 125));
        let (image, _) = decode_scaled(&bytes, 2000, 1000, 1024).expect("decodes").expect("handled");
        assert_eq!((image.width(), image.height()), (2000, 1000));
    }

    #[test]
    fn truncated_and_corrupt_data_is_an_error_not_a_panic_or_grey() {
        let bytes = jpeg(640, 480);
        for cut in [bytes.len() / 2, bytes.len() - 40] {
            let result = decode_scaled(&bytes[..cut], 640, 480, 64);
            assert!(matches!(result, Err(ThumbError::Undecodable(_))), "cut at {cut}: {result:?}");
        }
        let mut garbled = bytes.clone();
        garbled[2..200].fill(0x55);
        assert!(matches!(decode_scaled(&garbled, 640, 480, 64), Err(ThumbError::Undecodable(_))));
    }

    #[test]
    fn encoding_round_trips_to_a_close_picture() {
        let source = RgbImage::from_fn(64, 48, |x, _| image::Rgb([(x * 4) as u8, 100, 200]));
        let bytes = encode(&source, 90).expect("encodes");
        let decoded = image::load_from_memory(&bytes).expect("decodes").to_rgb8();
        let error: u64 = source.as_raw().iter().zip(decoded.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
        assert!(error / (source.as_raw().len() as u64) < 4, "mean error {}", error / source.as_raw().len() as u64);
    }
}
