//! Shields-style ("flat") SVG badges for READMEs and wikis: a grey label and a coloured
//! message, sized from Verdana's advance widths as shields.io sizes them.

use maud::html;

use super::RowState;

/// Shields' named colours.
const GREEN: &str = "#4c1";
const RED: &str = "#e05d44";
const ORANGE: &str = "#fe7d37";
const BLUE: &str = "#007ec6";
const GREY: &str = "#9f9f9f";
const PURPLE: &str = "#8a63d2";

/// The colour of a state's badge.
pub fn state_color(state: RowState) -> &'static str {
    match state {
        RowState::Passing => GREEN,
        RowState::Failing => RED,
        RowState::Stale => ORANGE,
        RowState::Blocked => PURPLE,
        RowState::Running => BLUE,
        RowState::NeverRun | RowState::Suspended => GREY,
    }
}

/// Verdana's advance widths (units of 1/2048 em) of printable ASCII, from ' ' to '~'.
const VERDANA: [u16; 95] = [
    720, 820, 942, 1716, 1303, 2217, 1493, 546, 911, 911, 1303, 1716, 745, 842, 745,
    1245, // ' '..'/'
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, // digits
    872, 872, 1716, 1716, 1716, 1110, 2048, // ':'..'@'
    1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 862, 931, 1419, 1145, 1730, 1532, 1612, 1243,
    1612, 1429, 1405, 1260, 1503, 1401, 2025, 1405, 1260, 1405, // 'A'..'Z'
    911, 1245, 911, 1716, 1303, 1303, // '['..'`'
    1230, 1276, 1067, 1276, 1220, 720, 1276, 1296, 562, 687, 1187, 562, 1992, 1296, 1227, 1276,
    1276, 874, 1067, 807, 1296, 1187, 1675, 1187, 1187, 1067, // 'a'..'z'
    1300, 911, 1300, 1716, // '{'..'~'
];

/// The width of `text` in Verdana 11px, in tenths of a pixel (shields draws at scale .1).
fn text_width_tenths(text: &str) -> u32 {
    let units: u32 = text
        .chars()
        .map(|c| {
            let i = (c as u32).wrapping_sub(32) as usize;
            // Outside ASCII: about the width of a capital letter.
            u32::from(VERDANA.get(i).copied().unwrap_or(1400))
        })
        .sum();
    (units * 110).div_ceil(2048)
}

/// A badge reading `label | message`, the message on `color`.
pub fn render(label: &str, message: &str, color: &str) -> String {
    let label_text = text_width_tenths(label);
    let message_text = text_width_tenths(message);
    // 5px of padding on each side of each text, whole pixels as shields rounds them.
    let label_width = label_text.div_ceil(10) + 10;
    let message_width = message_text.div_ceil(10) + 10;
    let width = label_width + message_width;
    let title = format!("{label}: {message}");
    let label_x = label_width * 5;
    let message_x = label_width * 10 + message_width * 5;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height="20" role="img" aria-label=(title) {
            title { (title) }
            linearGradient id="s" x2="0" y2="100%" {
                stop offset="0" stop-color="#bbb" stop-opacity=".1" {}
                stop offset="1" stop-opacity=".1" {}
            }
            clipPath id="r" { rect width=(width) height="20" rx="3" fill="#fff" {} }
            g clip-path="url(#r)" {
                rect width=(label_width) height="20" fill="#555" {}
                rect x=(label_width) width=(message_width) height="20" fill=(color) {}
                rect width=(width) height="20" fill="url(#s)" {}
            }
            g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"
                text-rendering="geometricPrecision" font-size="110" {
                text aria-hidden="true" x=(label_x) y="150" fill="#010101" fill-opacity=".3"
                    transform="scale(.1)" textLength=(label_text) { (label) }
                text x=(label_x) y="140" transform="scale(.1)" fill="#fff" textLength=(label_text) { (label) }
                text aria-hidden="true" x=(message_x) y="150" fill="#010101" fill-opacity=".3"
                    transform="scale(.1)" textLength=(message_text) { (message) }
                text x=(message_x) y="140" transform="scale(.1)" fill="#fff" textLength=(message_text) { (message) }
            }
        }
    }
    .into_string()
}

/// Shields' colour of an uptime: green from 99.9%, down to red under 90%.
pub fn uptime_color(percent: f64) -> &'static str {
    match percent {
        p if p >= 99.9 => GREEN,
        p if p >= 99.0 => "#97ca00",
        p if p >= 95.0 => "#dfb317",
        p if p >= 90.0 => ORANGE,
        _ => RED,
    }
}

/// An uptime badge: `uptime 7d | 99.52%`; `no data` while nothing of the window was observed.
pub fn uptime(window: &str, percent: Option<f64>) -> String {
    let label = format!("uptime {window}");
    match percent {
        Some(p) if p >= 99.995 => render(&label, "100%", uptime_color(p)),
        Some(p) => render(&label, &format!("{p:.2}%"), uptime_color(p)),
        None => render(&label, "no data", GREY),
    }
}

/// The status badge of a check: its name, and its state.
pub fn status(name: &str, state: RowState) -> String {
    render(name, state.label(), state_color(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_status_badges() {
        insta::assert_snapshot!("passing", status("dns-status-internal", RowState::Passing));
        insta::assert_snapshot!("failing", status("pod-restarts", RowState::Failing));
        insta::assert_snapshot!("stale", status("gear", RowState::Stale));
        insta::assert_snapshot!("never_run", status("new-check", RowState::NeverRun));
        insta::assert_snapshot!("uptime_7d", uptime("7d", Some(99.523)));
        insta::assert_snapshot!("uptime_24h_full", uptime("24h", Some(100.0)));
        insta::assert_snapshot!("uptime_30d_no_data", uptime("30d", None));
    }

    #[test]
    fn names_are_escaped() {
        let svg = render("<script>alert(1)</script>", "a&b\"", GREEN);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(svg.contains("a&amp;b&quot;"), "{svg}");
    }

    #[test]
    fn wider_text_makes_a_wider_badge() {
        let narrow = text_width_tenths("iiii");
        let wide = text_width_tenths("WWWW");
        assert!(wide > 2 * narrow, "{narrow} {wide}");
        // Shields' own measure of "passing" in Verdana 11px is about 41px.
        assert!((400..=430).contains(&text_width_tenths("passing")));
    }
}
