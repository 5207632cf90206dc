//! A chart as a figure that reads on its own (on a slide, in a report): an SVG with the chart's
//! title, a caption naming the scan and the step, the axes, the lines, and a legend naming each
//! line with its last value. The page downloads it as `.svg` and, drawn at twice its size, as
//! `.png`. Written by hand for the same reason as the charts (`super::chart`).

use super::chart::{
    BOTTOM, HEIGHT, LEFT, RIGHT, Scale, Series, TOP, WIDTH, format_tick, path, thin,
};

/// Height of the title and caption above the plot.
const HEADER: f64 = 34.0;
/// Height of one legend row below the plot.
const ROW: f64 = 14.0;
/// Most points drawn per line (as the live charts).
const MAX_POINTS: usize = 600;

/// Text safe inside SVG elements and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How a chart's y axis is drawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Axis {
    pub log_y: bool,
    /// Linear charts show y = 0.
    pub include_zero: bool,
    /// A labelled horizontal line (the clipping threshold).
    pub threshold: Option<(f64, String)>,
}

/// The figure's size in SVG units, for `series` lines.
pub fn figure_size(series: &[Series]) -> (f64, f64) {
    (WIDTH, HEADER + HEIGHT + 6.0 + ROW * series.len() as f64)
}

/// The chart `title` of `series` as a standalone SVG document, with `caption` under the title.
pub fn figure_svg(title: &str, caption: &str, series: &[Series], axis: &Axis) -> String {
    let mut include: Vec<f64> = axis.threshold.iter().map(|(y, _)| *y).collect();
    if axis.include_zero && !axis.log_y {
        include.push(0.0);
    }
    let scale = Scale::fit(series, axis.log_y, &include);
    let (width, height) = figure_size(series);
    let (plot_right, plot_bottom) = (WIDTH - RIGHT, HEIGHT - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n\
         <rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n\
         <text x=\"{LEFT}\" y=\"14\" font-size=\"12\" font-weight=\"bold\" fill=\"#1b1f24\">{}</text>\n\
         <text x=\"{LEFT}\" y=\"28\" font-size=\"9\" fill=\"#4b5563\">{}</text>\n\
         <g transform=\"translate(0 {HEADER})\">\n\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#f8fafc\" stroke=\"#d1d5db\"/>\n",
        escape(title),
        escape(caption),
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    for tick in scale.y_ticks() {
        let Some(y) = scale.y(tick) else { continue };
        let zero = !axis.log_y && tick == 0.0;
        let (stroke, width) = if zero {
            ("#1b1f24", 1.4)
        } else {
            ("#e5e7eb", 0.6)
        };
        svg += &format!(
            "<line x1=\"{LEFT}\" x2=\"{plot_right}\" y1=\"{y:.2}\" y2=\"{y:.2}\" stroke=\"{stroke}\" \
             stroke-width=\"{width}\"/>\n<text x=\"{:.1}\" y=\"{:.2}\" font-size=\"8\" \
             text-anchor=\"end\" fill=\"#4b5563\">{}</text>\n",
            LEFT - 4.0,
            y + 3.0,
            escape(&format_tick(tick))
        );
    }
    for tick in scale.x_ticks() {
        svg += &format!(
            "<text x=\"{:.2}\" y=\"{:.1}\" font-size=\"8\" text-anchor=\"middle\" \
             fill=\"#4b5563\">{}</text>\n",
            scale.x(tick),
            HEIGHT - 6.0,
            escape(&format_tick(tick))
        );
    }
    svg += &format!(
        "<text x=\"{plot_right}\" y=\"{:.1}\" font-size=\"8\" text-anchor=\"end\" \
         fill=\"#4b5563\">step</text>\n",
        plot_bottom + 20.0
    );
    if let Some((value, label)) = &axis.threshold
        && let Some(y) = scale.y(*value)
    {
        svg += &format!(
            "<line x1=\"{LEFT}\" x2=\"{plot_right}\" y1=\"{y:.2}\" y2=\"{y:.2}\" stroke=\"#9ca3af\" \
             stroke-dasharray=\"2 2\"/>\n<text x=\"{:.1}\" y=\"{:.2}\" font-size=\"8\" \
             text-anchor=\"end\" fill=\"#4b5563\">{}</text>\n",
            plot_right - 2.0,
            y - 3.0,
            escape(label)
        );
    }
    for line in series {
        svg += &format!(
            "<path d=\"{}\" stroke=\"{}\" fill=\"none\" stroke-width=\"1.6\"{}/>\n",
            path(&thin(&line.points, MAX_POINTS), &scale),
            escape(&line.colour),
            if line.dashed {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            }
        );
    }
    svg += "</g>\n";
    for (row, line) in series.iter().enumerate() {
        let y = HEADER + HEIGHT + 6.0 + ROW * row as f64 + 8.0;
        let last = line
            .points
            .last()
            .map(|(step, value)| format!(": {value:.4} at step {step}"))
            .unwrap_or_default();
        svg += &format!(
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" \
             stroke-width=\"2\"{}/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" \
             fill=\"#1b1f24\">{}</text>\n",
            LEFT + 16.0,
            y - 3.0,
            y - 3.0,
            escape(&line.colour),
            if line.dashed {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            },
            LEFT + 22.0,
            y,
            escape(&format!("{}{last}", line.name))
        );
    }
    svg += "</svg>\n";
    svg
}

/// `png` with a `tEXt` chunk (`keyword`, `text`) right after its header, as the PNG
/// specification lets a file carry text (the run's link in a figure of the slices: the figure
/// says which settings made it). Written by hand: a chunk is a length, a type, the data and a
/// CRC-32, and no well-kept crate edits the chunks of a PNG the browser encoded.
pub fn png_with_text(png: &[u8], keyword: &str, text: &str) -> Result<Vec<u8>, String> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    // The signature, then IHDR: 4 bytes of length, 4 of type, 13 of data, 4 of CRC.
    let after_header = 8 + 4 + 4 + 13 + 4;
    if png.len() < after_header || png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return Err("the canvas did not give a PNG".into());
    }
    if keyword.is_empty() || keyword.len() > 79 || !keyword.is_ascii() || !text.is_ascii() {
        return Err("a PNG text chunk holds a 1–79 character keyword and Latin-1 text".into());
    }
    let mut data = Vec::with_capacity(keyword.len() + 1 + text.len());
    data.extend_from_slice(keyword.as_bytes());
    data.push(0);
    data.extend_from_slice(text.as_bytes());
    let mut chunk = Vec::with_capacity(data.len() + 12);
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(b"tEXt");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&crc32fast::hash(&chunk[4..]).to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..after_header]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[after_header..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_chunk_goes_after_the_header_with_its_crc() {
        // A 1×1 grey PNG: signature, IHDR, IDAT, IEND.
        let png: Vec<u8> = [
            &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'][..],
            &[0, 0, 0, 13],
            b"IHDR",
            &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0],
            &[0x3a, 0x7e, 0x9b, 0x55],
            &[0, 0, 0, 10],
            b"IDAT",
            &[0x78, 0x9c, 0x63, 0x68, 0, 0, 0, 0x82, 0, 0x81],
            &[0x77, 0xcd, 0x72, 0xb6],
            &[0, 0, 0, 0],
            b"IEND",
            &[0xae, 0x42, 0x60, 0x82],
        ]
        .concat();
        let link = "http://127.0.0.1:8080/#model=simple&patch=16";
        let out = png_with_text(&png, "gdl-lab link", link).unwrap();
        let chunk = &out[33..];
        let length = u32::from_be_bytes(chunk[..4].try_into().unwrap()) as usize;
        assert_eq!(&chunk[4..8], b"tEXt");
        assert_eq!(
            &chunk[8..8 + length],
            format!("gdl-lab link\0{link}").as_bytes()
        );
        let crc = u32::from_be_bytes(chunk[8 + length..12 + length].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&chunk[4..8 + length]));
        // IHDR's own CRC checks out the same way, so the test's CRC rule is PNG's.
        assert_eq!(crc32fast::hash(&png[12..29]), 0x3a7e9b55);
        assert_eq!(&out[33 + 12 + length..], &png[33..]);
        assert!(png_with_text(b"GIF89a", "k", "t").is_err());
    }

    #[test]
    fn a_figure_names_its_lines_and_escapes_their_text() {
        let series = vec![Series {
            name: "Dice necrotic core & <rim>".into(),
            colour: "#d55e00".into(),
            dashed: false,
            points: vec![(1.0, 0.2), (2.0, 0.4)],
        }];
        let svg = figure_svg("Soft Dice", "case_001 · step 2", &series, &Axis::default());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("Dice necrotic core &amp; &lt;rim&gt;: 0.4000 at step 2"));
        assert!(svg.contains("case_001 · step 2") && svg.contains("<path d=\"M"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
