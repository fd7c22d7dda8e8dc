//! Lanczos3 reduction of 8-bit images, pixel-for-pixel the same as libvips
//! 8.14's `reducev` + `reduceh` (what `vipsthumbnail` does after
//! shrink-on-load when less than 4× is left to shrink). Ours because JPEG
//! thumbnails are judged against libvips': a general resizer lands ±1–2
//! levels away, and re-encoding at quality 82 amplifies that into visible
//! DSSIM. Matching libvips means: one shrink factor for both axes, taps
//! placed on a 1/64-pixel grid, the vertical pass first with 6-bit
//! coefficients, then the horizontal pass with 12-bit ones, edges extended.

/// Sub-pixel positions a mask is made for (libvips' `VIPS_TRANSFORM_SCALE`).
const PHASES: usize = 64;

/// A reduction of one axis: for every output index, the first input index
/// its taps cover (before clamping) and which of the precomputed masks
/// weighs them.
struct AxisPlan {
    taps: usize,
    starts: Vec<isize>,
    phases: Vec<usize>,
    /// `PHASES + 1` masks of `taps` coefficients each, already fixed-point.
    masks: Vec<Vec<i32>>,
}

fn lanczos3(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    if x.abs() >= 3.0 {
        return 0.0;
    }
    let px = std::f64::consts::PI * x;
    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
}

/// Normalised Lanczos3 weights of `taps` input pixels for a point `phase /
/// 64` of a pixel past the window's centre. libvips centres the window half
/// a pixel early and starts it one pixel later, which cancels out.
fn mask(taps: usize, shrink: f64, phase: usize) -> Vec<f64> {
    let half = phase as f64 / PHASES as f64 + taps as f64 / 2.0 - 1.0;
    let weights: Vec<f64> = (0..taps).map(|i| lanczos3((i as f64 - half) / shrink)).collect();
    let sum: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / sum).collect()
}

/// Rounds half away from zero (C's `VIPS_RINT`).
fn rint(value: f64) -> i32 {
    if value > 0.0 { (value + 0.5) as i32 } else { (value - 0.5) as i32 }
}

/// libvips' `vips_vector_to_fixed_point`: integer weights at `scale`,
/// rounded after multiplying by a gain bisected until their sum is the
/// rounded scaled sum; what is still off is spread from the first weight on.
fn fixed_point_exact_sum(weights: &[f64], scale: i32) -> Vec<i32> {
    let target = rint(weights.iter().sum::<f64>() * f64::from(scale));
    let n = weights.len() as i32;
    let (mut low, mut high) = (f64::from(scale - (n + 1) / 2), f64::from(scale + (n + 1) / 2));
    let mut out;
    loop {
        let guess = (high + low) / 2.0;
        out = weights.iter().map(|w| rint(w * guess)).collect::<Vec<i32>>();
        let sum: i32 = out.iter().sum();
        if sum == target {
            return out;
        }
        if sum < target {
            low = guess;
        } else {
            high = guess;
        }
        if high - low <= 0.01 {
            break;
        }
    }
    let error = target - out.iter().sum::<i32>();
    let (each, extra) = (error / n, error % n);
    for (i, weight) in out.iter_mut().enumerate() {
        *weight += each + if (i as i32) < extra.abs() { extra.signum() } else { 0 };
    }
    out
}

impl AxisPlan {
    fn new(in_len: usize, out_len: usize, shrink: f64, fixed: impl Fn(&[f64]) -> Vec<i32>) -> Self {
        let taps = 2 * (3.0 * shrink).round_ties_even() as usize + 1;
        let masks = (0..=PHASES).map(|phase| fixed(&mask(taps, shrink, phase))).collect();
        // Half of the pixels the output grid invents (or, negative, drops) go to each side.
        let invented = out_len as f64 * shrink - in_len as f64;
        let offset = (1.0 + invented) / 2.0 - 1.0;
        let pad = taps.div_ceil(2) as isize - 1;
        let (mut starts, mut phases) = (Vec::with_capacity(out_len), Vec::with_capacity(out_len));
        for out in 0..out_len {
            let position = (out as f64 + 0.5) * shrink - 0.5 - offset;
            starts.push(position as isize - pad);
            phases.push((((position * (2 * PHASES) as f64) as isize & (2 * PHASES as isize - 1)) + 1) as usize >> 1);
        }
        Self { taps, starts, phases, masks }
    }

    /// Input index of tap `tap` of output `out`, the edge pixel repeated past the ends.
    fn source(&self, out: usize, tap: usize, in_len: usize) -> usize {
        (self.starts[out] + tap as isize).clamp(0, in_len as isize - 1) as usize
    }
}

/// Whether libvips runs `reduce` alone for an axis going from `from` to `to`
/// pixels: under 4× (beyond, it box-shrinks first, which Coffer does not copy).
pub fn applies(from: u32, to: u32) -> bool {
    from < 4 * to
}

/// The shrink factor libvips hands `reduce` for a thumbnail whose longest
/// side goes from `longest` to `size`: the inverse of the inverse, the same double.
pub fn shrink_for(longest: u32, size: u32) -> f64 {
    1.0 / (1.0 / (f64::from(longest) / f64::from(size)))
}

/// Reduces a packed `width`×`height` image of `channels` 8-bit channels to
/// `out_width`×`out_height`, where the longest side shrinks by
/// `shrink` (the same factor is used for both axes, as libvips does).
pub fn reduce(
    pixels: &[u8],
    (width, height): (usize, usize),
    channels: usize,
    (out_width, out_height): (usize, usize),
    shrink: f64,
) -> Vec<u8> {
    debug_assert_eq!(pixels.len(), width * height * channels);
    let vertical = AxisPlan::new(height, out_height, shrink, |w| fixed_point_exact_sum(w, 64));
    let horizontal = AxisPlan::new(width, out_width, shrink, |w| w.iter().map(|c| (c * 4096.0) as i32).collect());

    let stride = width * channels;
    let mut vertically_reduced = vec![0u8; stride * out_height];
    let mut sums = vec![0i32; stride];
    for (out_y, row) in vertically_reduced.chunks_exact_mut(stride).enumerate() {
        sums.fill(0);
        let mask = &vertical.masks[vertical.phases[out_y]];
        for (tap, &weight) in mask.iter().enumerate() {
            let y = vertical.source(out_y, tap, height);
            for (sum, &value) in sums.iter_mut().zip(&pixels[y * stride..(y + 1) * stride]) {
                *sum += weight * i32::from(value);
            }
        }
        for (value, &sum) in row.iter_mut().zip(&sums) {
            *value = ((sum + 32) >> 6).clamp(0, 255) as u8;
        }
    }

    let mut out = vec![0u8; out_width * channels * out_height];
    let sources: Vec<Vec<usize>> = (0..out_width)
        .map(|out_x| (0..horizontal.taps).map(|tap| horizontal.source(out_x, tap, width) * channels).collect())
        .collect();
    for (row, out_row) in vertically_reduced.chunks_exact(stride).zip(out.chunks_exact_mut(out_width * channels)) {
        for (out_x, pixel) in out_row.chunks_exact_mut(channels).enumerate() {
            let mask = &horizontal.masks[horizontal.phases[out_x]];
            for (channel, value) in pixel.iter_mut().enumerate() {
                let sum: i32 = mask.iter().zip(&sources[out_x]).map(|(&w, &x)| w * i32::from(row[x + channel])).sum();
                *value = ((sum + 2048) >> 12).clamp(0, 255) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> image::RgbImage {
        let path = format!("{}/tests/fixtures/reduce/{name}.png", env!("CARGO_MANIFEST_DIR"));
        image::open(path).expect("fixture").to_rgb8()
    }

    /// Each `<source>-vips-<size>.png` is `vipsthumbnail <source>.png -s <size>`
    /// with libvips 8.14; `tall` → 104 needs the residual-error spreading of
    /// the vertical coefficients.
    #[test]
    fn matches_libvips_pixel_for_pixel() {
        for (source, size) in [("wide", 32u32), ("wide", 40), ("wide", 46), ("wide", 60), ("tall", 104)] {
            let input = fixture(source);
            let expected = fixture(&format!("{source}-vips-{size}"));
            let (width, height) = (input.width(), input.height());
            assert_eq!(crate::media::thumbnail::fit(width, height, size), expected.dimensions());
            let shrink = shrink_for(width.max(height), size);
            let reduced = reduce(
                input.as_raw(),
                (width as usize, height as usize),
                3,
                (expected.width() as usize, expected.height() as usize),
                shrink,
            );
            let differing = reduced.iter().zip(expected.as_raw()).filter(|(a, b)| a != b).count();
            assert_eq!(differing, 0, "{source} → {size}: {differing} channel values differ from libvips");
        }
    }

    #[test]
    fn vertical_coefficients_sum_to_exactly_one() {
        for shrink in [1.3, 2.0, 2.93, 3.99] {
            let plan = AxisPlan::new(100, 30, shrink, |w| fixed_point_exact_sum(w, 64));
            assert!(plan.masks.iter().all(|m| m.iter().sum::<i32>() == 64), "shrink {shrink}");
        }
    }

    proptest! {
        #[test]
        fn a_flat_image_stays_flat(value in any::<u8>(), width in 4usize..60, height in 4usize..60, shrink in 1.05f64..3.99) {
            let out_width = ((width as f64 / shrink).round() as usize).max(1);
            let out_height = ((height as f64 / shrink).round() as usize).max(1);
            let reduced = reduce(&vec![value; width * height * 3], (width, height), 3, (out_width, out_height), shrink);
            prop_assert_eq!(reduced.len(), out_width * out_height * 3);
            // The horizontal pass truncates its 12-bit coefficients (as libvips
            // does), so their sum can fall a few units short of 4096: a flat
            // 228 may come out 227, never further off.
            prop_assert!(reduced.iter().all(|&v| v.abs_diff(value) <= 1), "{value} became {reduced:?}");
        }
    }
}
