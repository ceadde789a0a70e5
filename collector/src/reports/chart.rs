//! The report's chart: visitors per day as bars, a PNG (mail clients do not show SVG), drawn
//! at twice the size it is shown ([`WIDTH`] × [`HEIGHT`] shown at half) with a palette of four
//! colours, so a month's chart is a few kilobytes.

/// The image's size in pixels.
pub const WIDTH: u32 = 1120;
pub const HEIGHT: u32 = 320;
/// Pixels around the plot.
pub const PAD: u32 = 16;

const BACKGROUND: u8 = 0;
pub const BAR: u8 = 1;
const GRID: u8 = 2;
const AXIS: u8 = 3;
/// White, indigo bars, light grid lines, a grey base line.
const PALETTE: [u8; 12] = [
    0xff, 0xff, 0xff, 0x4f, 0x46, 0xe5, 0xe5, 0xe7, 0xeb, 0x9c, 0xa3, 0xaf,
];

/// The bottom row of the plot: bars stand on it.
pub const BASE: u32 = HEIGHT - PAD - 1;
/// The tallest bar's height in pixels.
pub const PLOT_HEIGHT: u32 = HEIGHT - 2 * PAD - 1;

/// Where bar `i` of `n` spans, in columns (a quarter of each slot is the gap).
pub fn bar_columns(i: usize, n: usize) -> (u32, u32) {
    let plot = f64::from(WIDTH - 2 * PAD);
    let slot = plot / n.max(1) as f64;
    let gap = (slot / 4.0).max(1.0);
    let start = f64::from(PAD) + slot * i as f64 + gap / 2.0;
    let end = (start + slot - gap).max(start + 1.0);
    (start.round() as u32, (end.round() as u32).min(WIDTH - PAD))
}

/// A bar's height for `value` when the largest is `max`: in proportion, at least 2 pixels
/// for a value above zero.
pub fn bar_height(value: u64, max: u64) -> u32 {
    if value == 0 || max == 0 {
        return 0;
    }
    let h = (value as f64 / max as f64 * f64::from(PLOT_HEIGHT)).round() as u32;
    h.clamp(2, PLOT_HEIGHT)
}

/// The PNG of `values` as bars, left to right.
pub fn bars(values: &[u64]) -> Result<Vec<u8>, String> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut pixels = vec![BACKGROUND; w * h];
    let mut fill = |x0: u32, x1: u32, y0: u32, y1: u32, colour: u8| {
        for y in y0..y1.min(HEIGHT) {
            let row = y as usize * w;
            pixels[row + x0 as usize..row + x1.min(WIDTH) as usize].fill(colour);
        }
    };
    // Grid lines at a third and two thirds of the tallest bar, and at its top.
    for k in 1..=3 {
        let y = BASE - PLOT_HEIGHT * k / 3;
        fill(PAD, WIDTH - PAD, y, y + 1, GRID);
    }
    let max = values.iter().copied().max().unwrap_or(0);
    for (i, v) in values.iter().enumerate() {
        let (x0, x1) = bar_columns(i, values.len());
        let bar = bar_height(*v, max);
        fill(x0, x1, BASE + 1 - bar, BASE + 1, BAR);
    }
    fill(PAD, WIDTH - PAD, BASE + 1, BASE + 2, AXIS);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(PALETTE.to_vec());
    let mut writer = encoder
        .write_header()
        .map_err(|e| format!("cannot draw the chart: {e}"))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| format!("cannot draw the chart: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("cannot draw the chart: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_in_proportion_and_the_image_is_small() {
        let png = bars(&[0, 10, 5, 20, 1, 0, 20]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() < 8_000, "{} bytes", png.len());
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        // The palette expands to RGB: count each bar's indigo pixels down its middle column.
        let height = |i: usize| {
            let (x0, x1) = bar_columns(i, 7);
            let x = ((x0 + x1) / 2) as usize;
            (0..HEIGHT as usize)
                .filter(|y| buf[(y * WIDTH as usize + x) * 3..][..3] == PALETTE[3..6])
                .count() as u32
        };
        let heights: Vec<u32> = (0..7).map(height).collect();
        assert_eq!(heights[3], PLOT_HEIGHT);
        assert_eq!(heights[1], bar_height(10, 20));
        assert_eq!(heights[0], 0);
        assert_eq!(heights[4], bar_height(1, 20));
        assert!(bars(&[]).is_ok());
        assert!(bars(&[0; 31]).is_ok());
    }
}
