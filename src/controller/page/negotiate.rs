//! Who gets the HTML page at `GET /`: a browser. Every other client (curl's `*/*`, v2 tooling
//! that sends no `Accept`, `application/json`) keeps getting v2's JSON.

/// Whether `accept` asks for HTML: `text/html` (or XHTML) is named with a non-zero quality at
/// least as high as JSON's. Wildcards never count: `*/*` means "anything", and v2 answered it
/// with JSON.
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut html: Option<f32> = None;
    let mut json: Option<f32> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("q")).then(|| v.trim().parse::<f32>().ok())?
            })
            .next()
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "text/html" | "application/xhtml+xml" => &mut html,
            "application/json" => &mut json,
            _ => continue,
        };
        *slot = Some(slot.map_or(quality, |q| q.max(quality)));
    }
    match html {
        Some(h) if h > 0.0 => json.is_none_or(|j| h >= j),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::wants_html;

    #[test]
    fn browsers_get_html() {
        // Chromium's and Firefox's Accept for a navigation.
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
        )));
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(wants_html(Some("TEXT/HTML")));
    }

    #[test]
    fn every_other_client_gets_json() {
        assert!(!wants_html(None), "v2 tooling that sends no Accept");
        assert!(!wants_html(Some("*/*")), "curl");
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(Some("")));
        assert!(!wants_html(Some("text/*")));
        assert!(!wants_html(Some("text/plain")));
    }

    #[test]
    fn quality_decides_between_html_and_json() {
        assert!(!wants_html(Some("text/html;q=0")));
        assert!(!wants_html(Some("application/json, text/html;q=0.5")));
        assert!(wants_html(Some("application/json;q=0.5, text/html")));
        assert!(wants_html(Some(
            "text/html; q=0.9, application/json; q=0.9"
        )));
        assert!(
            wants_html(Some("text/html;q=bogus")),
            "an unreadable quality counts as 1"
        );
    }
}
