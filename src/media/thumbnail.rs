//! Rendering one thumbnail from image bytes, synchronously (callers run it on
//! the blocking pool): header check against the limits before any pixel is
//! decoded, shrink-on-load for JPEG (DCT scaling to 1/2, 1/4 or 1/8 while
//! the result stays at least twice the target, in `jpeg`), Lanczos3 for the
//! rest (`reduce`, libvips' own arithmetic, for RGB shrinking under 4×;
//! `fast_image_resize` otherwise), EXIF orientation, then WebP or JPEG.

use std::io::Cursor;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// Quality of JPEG thumbnails (libvips' default).
const JPEG_QUALITY: u8 = 82;

/// Longest sides a thumbnail may have.
pub const SIZES: [u32; 5] = [64, 128, 256, 512, 1024];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThumbFormat {
    Webp,
    Jpeg,
}

impl ThumbFormat {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "webp" => Some(Self::Webp),
            "jpeg" | "jpg" => Some(Self::Jpeg),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webp => "webp",
            Self::Jpeg => "jpeg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Webp => "image/webp",
            Self::Jpeg => "image/jpeg",
        }
    }
}

/// What images Coffer agrees to decode.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    pub max_pixels: u64,
    pub max_side: u32,
    /// Bytes the decoder may allocate.
    pub max_alloc: u64,
}

impl ImageLimits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            max_pixels: config.thumbnail_max_pixels,
            max_side: config.thumbnail_max_side,
            // Decoded RGBA at the pixel limit, plus room for the decoder's own buffers.
            max_alloc: config.thumbnail_max_pixels * 4 + (64 << 20),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThumbError {
    /// Not an image Coffer renders (415).
    #[error("not an image format thumbnails are made from")]
    Unsupported,
    /// Over the size limits (422).
    #[error("the image is {width}×{height}; the limit is {max_pixels} pixels and {max_side} px per side")]
    TooLarge { width: u32, height: u32, max_pixels: u64, max_side: u32 },
    /// Corrupt or truncated (422).
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

type BytesReader<'a> = ImageReader<Cursor<&'a [u8]>>;

const FORMATS: [ImageFormat; 6] =
    [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::Tiff];

fn undecodable(error: impl std::fmt::Display) -> ThumbError {
    ThumbError::Undecodable(error.to_string())
}

/// The size of the thumbnail of a `width`×`height` image: longest side
/// `size`, aspect kept, never upscaled, never zero.
pub fn fit(width: u32, height: u32, size: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= size {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| ((u64::from(side) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest)) as u32;
    (scale(width).max(1), scale(height).max(1))
}

/// Bytes enough to recognize every supported format by its signature.
pub const SIGNATURE_BYTES: u64 = 64;

/// Refuses, from its first bytes alone, a source that is no image format
/// thumbnails are made from (so its whole body is never read for nothing).
pub fn sniff(head: &[u8]) -> Result<ImageFormat, ThumbError> {
    image::guess_format(head).ok().filter(|format| FORMATS.contains(format)).ok_or(ThumbError::Unsupported)
}

fn reader<'a>(bytes: &'a [u8], limits: &ImageLimits) -> Result<(BytesReader<'a>, ImageFormat), ThumbError> {
    let format = sniff(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = Limits::default();
    decode_limits.max_alloc = Some(limits.max_alloc);
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    reader.limits(decode_limits);
    Ok((reader, format))
}

/// Reads only the header: the format and dimensions, refused when over the limits.
pub fn probe(bytes: &[u8], limits: &ImageLimits) -> Result<(ImageFormat, u32, u32), ThumbError> {
    let (reader, format) = reader(bytes, limits)?;
    let decoder = reader.into_decoder().map_err(|e| classify(e, limits))?;
    let (width, height) = decoder.dimensions();
    check_limits(width, height, limits)?;
    Ok((format, width, height))
}

fn check_limits(width: u32, height: u32, limits: &ImageLimits) -> Result<(), ThumbError> {
    if width.max(height) > limits.max_side || u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ThumbError::TooLarge { width, height, max_pixels: limits.max_pixels, max_side: limits.max_side });
    }
    Ok(())
}

/// `max_alloc` against the whole image: the decoders check only its sides
/// (`ImageReader::decode` would check the buffer too, but cannot hand back
/// the orientation first). The buffer counts as decoded (16-bit samples are
/// twice the bytes) plus the 8-bit copy `resize` makes of any other layout.
fn check_decoded_size(decoder: &impl ImageDecoder, limits: &ImageLimits) -> Result<(), ThumbError> {
    let (width, height) = decoder.dimensions();
    let copy = match decoder.color_type() {
        image::ColorType::Rgb8 | image::ColorType::Rgba8 => 0,
        _ => u64::from(width) * u64::from(height) * 4,
    };
    if decoder.total_bytes().saturating_add(copy) > limits.max_alloc {
        return Err(ThumbError::TooLarge { width, height, max_pixels: limits.max_pixels, max_side: limits.max_side });
    }
    Ok(())
}

fn classify(error: image::ImageError, limits: &ImageLimits) -> ThumbError {
    match error {
        image::ImageError::Limits(_) => {
            ThumbError::TooLarge { width: 0, height: 0, max_pixels: limits.max_pixels, max_side: limits.max_side }
        }
        // The format was recognized, so what its decoder lacks (a TIFF
        // compression, say) makes an image that cannot be decoded: 422.
        image::ImageError::Unsupported(why) => {
            ThumbError::Undecodable(format!("it uses what the decoder does not support: {why}"))
        }
        other => undecodable(other),
    }
}

/// Renders the thumbnail of `bytes`: longest side `size`, in `format`.
pub fn render(bytes: &[u8], size: u32, format: ThumbFormat, limits: &ImageLimits) -> Result<Vec<u8>, ThumbError> {
    let (image_format, width, height) = probe(bytes, limits)?;
    if image_format == ImageFormat::Jpeg {
        super::jpeg::check_scans(bytes)?;
    }
    let (decoded, orientation) = match image_format {
        ImageFormat::Jpeg => match super::jpeg::decode_scaled(bytes, width, height, size)? {
            Some(decoded) => decoded,
            None => decode(bytes, limits)?,
        },
        _ => decode(bytes, limits)?,
    };
    let mut thumb = resize(decoded, size)?;
    thumb.apply_orientation(orientation);
    encode(thumb, format)
}

/// Any supported format through `image`, with its orientation.
fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<(DynamicImage, Orientation), ThumbError> {
    let (reader, _) = reader(bytes, limits)?;
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, limits))?;
    check_decoded_size(&decoder, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, limits))?;
    Ok((image, orientation))
}

/// Down to `size` (never up), in 8-bit RGB or RGBA.
fn resize(image: DynamicImage, size: u32) -> Result<DynamicImage, ThumbError> {
    let image = match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    };
    let (width, height) = fit(image.width(), image.height(), size);
    if (width, height) == (image.width(), image.height()) {
        return Ok(image);
    }
    if let DynamicImage::ImageRgb8(rgb) = &image
        && super::reduce::applies(rgb.width(), width)
        && super::reduce::applies(rgb.height(), height)
    {
        let shrink = super::reduce::shrink_for(rgb.width().max(rgb.height()), size);
        let dimensions = (rgb.width() as usize, rgb.height() as usize);
        let pixels = super::reduce::reduce(rgb.as_raw(), dimensions, 3, (width as usize, height as usize), shrink);
        let reduced = RgbImage::from_raw(width, height, pixels).ok_or_else(|| undecodable("reduce: wrong size"))?;
        return Ok(DynamicImage::ImageRgb8(reduced));
    }
    let mut target = match &image {
        DynamicImage::ImageRgba8(_) => DynamicImage::new_rgba8(width, height),
        _ => DynamicImage::new_rgb8(width, height),
    };
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&image, &mut target, &options).map_err(undecodable)?;
    Ok(target)
}

fn encode(image: DynamicImage, format: ThumbFormat) -> Result<Vec<u8>, ThumbError> {
    match format {
        ThumbFormat::Webp => {
            let mut out = Cursor::new(Vec::new());
            image.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out)).map_err(undecodable)?;
            Ok(out.into_inner())
        }
        ThumbFormat::Jpeg => super::jpeg::encode(&flatten_on_white(image), JPEG_QUALITY),
    }
}

/// JPEG has no alpha: transparent pixels become white, not black.
fn flatten_on_white(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgba8(rgba) => {
            let mut rgb = RgbImage::new(rgba.width(), rgba.height());
            for (target, source) in rgb.pixels_mut().zip(rgba.pixels()) {
                let alpha = u16::from(source[3]);
                for channel in 0..3 {
                    let blended = (u16::from(source[channel]) * alpha + 255 * (255 - alpha) + 127) / 255;
                    target[channel] = blended as u8;
                }
            }
            rgb
        }
        other => other.into_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: ImageLimits = ImageLimits { max_pixels: 50_000_000, max_side: 16_384, max_alloc: 512 << 20 };

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    #[test]
    fn signatures_are_recognized_from_the_first_bytes() {
        let png = encoded(&DynamicImage::new_rgb8(3, 2), ImageFormat::Png);
        let head = &png[..SIGNATURE_BYTES as usize];
        assert_eq!(sniff(head).ok(), Some(ImageFormat::Png));
        let jpeg = encoded(&DynamicImage::new_rgb8(3, 2), ImageFormat::Jpeg);
        assert_eq!(sniff(&jpeg[..SIGNATURE_BYTES as usize]).ok(), Some(ImageFormat::Jpeg));
        assert!(matches!(sniff(&[b'x'; 64]), Err(ThumbError::Unsupported)));
        assert!(matches!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"), Err(ThumbError::Unsupported)));
    }

    #[test]
    fn every_input_format_becomes_a_fitting_thumbnail() {
        let source = DynamicImage::ImageRgb8(RgbImage::from_fn(600, 300, |x, y| image::Rgb([x as u8, y as u8, 90])));
        for format in FORMATS {
            let source = if format == ImageFormat::Gif || format == ImageFormat::WebP {
                DynamicImage::ImageRgba8(source.to_rgba8())
            } else {
                source.clone()
            };
            let bytes = encoded(&source, format);
            for out in [ThumbFormat::Webp, ThumbFormat::Jpeg] {
                let thumb = render(&bytes, 128, out, &LIMITS).unwrap_or_else(|e| panic!("{format:?}: {e}"));
                let decoded = image::load_from_memory(&thumb).expect("decodes");
                assert_eq!((decoded.width(), decoded.height()), (128, 64), "{format:?} → {out:?}");
            }
        }
    }

    #[test]
    fn small_images_are_never_upscaled() {
        let bytes = encoded(&DynamicImage::new_rgb8(40, 20), ImageFormat::Png);
        let thumb = render(&bytes, 256, ThumbFormat::Webp, &LIMITS).expect("thumb");
        let decoded = image::load_from_memory(&thumb).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (40, 20));
    }

    #[test]
    fn transparency_turns_white_in_jpeg() {
        let bytes = encoded(&DynamicImage::new_rgba8(10, 10), ImageFormat::Png);
        let thumb = render(&bytes, 64, ThumbFormat::Jpeg, &LIMITS).expect("thumb");
        let pixel = image::load_from_memory(&thumb).expect("decodes").to_rgb8().get_pixel(5, 5).0;
        assert!(pixel.iter().all(|&c| c > 240), "{pixel:?}");
    }

    #[test]
    fn garbage_svg_and_truncation_are_refused_without_panicking() {
        assert_eq!(render(b"just some text", 64, ThumbFormat::Webp, &LIMITS), Err(ThumbError::Unsupported));
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#;
        assert_eq!(render(svg, 64, ThumbFormat::Webp, &LIMITS), Err(ThumbError::Unsupported));
        let jpeg = encoded(&DynamicImage::new_rgb8(300, 200), ImageFormat::Jpeg);
        let truncated = &jpeg[..jpeg.len() / 3];
        assert!(matches!(render(truncated, 64, ThumbFormat::Webp, &LIMITS), Err(ThumbError::Undecodable(_))));
    }

    /// A one-pixel grey TIFF whose strip uses `compression`.
    fn tiff_compressed_with(compression: u16) -> Vec<u8> {
        const SHORT: u16 = 3;
        const LONG: u16 = 4;
        let entries: [(u16, u16, u32); 9] = [
            (256, SHORT, 1),                  // width
            (257, SHORT, 1),                  // height
            (258, SHORT, 8),                  // bits per sample
            (259, SHORT, compression.into()), // compression
            (262, SHORT, 1),                  // black is zero
            (273, LONG, 8 + 2 + 9 * 12 + 4),  // the strip, right after the directory
            (277, SHORT, 1),                  // samples per pixel
            (278, SHORT, 1),                  // rows per strip
            (279, LONG, 1),                   // strip bytes
        ];
        let mut tiff = b"II\x2a\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&9u16.to_le_bytes());
        for (tag, kind, value) in entries {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&kind.to_le_bytes());
            tiff.extend_from_slice(&1u32.to_le_bytes());
            tiff.extend_from_slice(&value.to_le_bytes());
        }
        tiff.extend_from_slice(&[0, 0, 0, 0, 0x80]);
        tiff
    }

    #[test]
    fn an_image_using_what_its_decoder_lacks_is_undecodable_not_unsupported() {
        assert!(render(&tiff_compressed_with(1), 64, ThumbFormat::Webp, &LIMITS).is_ok(), "uncompressed decodes");
        let jpeg_2000 = 34_712;
        match render(&tiff_compressed_with(jpeg_2000), 64, ThumbFormat::Webp, &LIMITS) {
            Err(ThumbError::Undecodable(why)) => assert!(why.contains("does not support"), "{why}"),
            other => panic!("expected 422 for a recognized image: {other:?}"),
        }
    }

    #[test]
    fn dimensions_over_the_limits_are_refused_before_decoding() {
        // A PNG header declaring 100,000 × 100,000 pixels, with no pixel data at all.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        let ihdr = [&100_000u32.to_be_bytes()[..], &100_000u32.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat();
        let mut crc_input = b"IHDR".to_vec();
        crc_input.extend_from_slice(&ihdr);
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        assert!(matches!(render(&png, 64, ThumbFormat::Webp, &LIMITS), Err(ThumbError::TooLarge { .. })));
        let tight = ImageLimits { max_pixels: 10_000, ..LIMITS };
        let bytes = encoded(&DynamicImage::new_rgb8(200, 100), ImageFormat::Png);
        assert!(matches!(render(&bytes, 64, ThumbFormat::Webp, &tight), Err(ThumbError::TooLarge { .. })));
    }

    #[test]
    fn a_decoded_buffer_over_the_allocation_limit_is_refused() {
        // 1000 × 1000 at 16 bits per RGBA sample: 8 MB decoded, 4 MB more as 8-bit.
        let bytes = encoded(&DynamicImage::new_rgba16(1000, 1000), ImageFormat::Png);
        let tight = ImageLimits { max_alloc: 10 << 20, ..LIMITS };
        assert!(matches!(
            render(&bytes, 64, ThumbFormat::Webp, &tight),
            Err(ThumbError::TooLarge { width: 1000, height: 1000, .. })
        ));
        assert!(render(&bytes, 64, ThumbFormat::Webp, &ImageLimits { max_alloc: 12 << 20, ..LIMITS }).is_ok());
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    proptest! {
        #[test]
        fn fit_keeps_aspect_within_a_pixel_and_never_grows(w in 1u32..20_000, h in 1u32..20_000, i in 0usize..5) {
            let size = SIZES[i];
            let (tw, th) = fit(w, h, size);
            prop_assert!(tw <= w && th <= h, "never upscaled");
            prop_assert!(tw >= 1 && th >= 1);
            let longest = w.max(h);
            if longest <= size {
                prop_assert_eq!((tw, th), (w, h));
            } else {
                prop_assert_eq!(tw.max(th), size);
                let scale = f64::from(size) / f64::from(longest);
                for (side, scaled) in [(w, tw), (h, th)] {
                    let exact = f64::from(side) * scale;
                    prop_assert!((f64::from(scaled) - exact).abs() <= 0.5 || scaled == 1, "{side} → {scaled}");
                }
            }
        }
    }
}
