//! The HTTP answer with a served document: `304 Not Modified` when the client holds these
//! bytes (`If-None-Match`), gzip when it accepts it (`Accept-Encoding`), else the bytes.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::Document;

/// Whether `Accept-Encoding` admits gzip: listed (or `*`) with a non-zero quality.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(quality > 0.0),
                "*" => any = Some(quality > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak comparison, as RFC 9110 asks for
/// this header: a `W/` prefix does not prevent a match.
pub(crate) fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The answer to a `GET` of `document`; `status` is the code of a full answer (the status
/// page's `?strict=true` makes it 503). A `304` is only given in place of a `200`.
pub fn respond(document: &Document, request: &HeaderMap, status: StatusCode) -> Response {
    let gzip = accepts_gzip(request);
    let etag = if gzip {
        document.gzip_etag()
    } else {
        document.etag()
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::VARY, HeaderValue::from_static("Accept-Encoding"))
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if status == StatusCode::OK && none_match(request, &etag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("a valid response");
    }
    builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, document.content_type());
    let body = if gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
        document.gzip().clone()
    } else {
        document.body().clone()
    };
    builder.body(Body::from(body)).expect("a valid response")
}
