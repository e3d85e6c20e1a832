use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use jiff::SignedDuration;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";

/// A render that counts its calls and says which call it was.
fn counting(renders: &AtomicU64, valid_until: Option<Timestamp>) -> impl FnOnce() -> Rendered {
    move || {
        let n = renders.fetch_add(1, Ordering::SeqCst) + 1;
        Rendered {
            body: format!("{{\"render\": {n}}}").into_bytes(),
            ok: true,
            valid_until,
        }
    }
}

#[tokio::test]
async fn rendered_once_for_many_requests_while_nothing_changed() {
    let served = Served::<Option<String>>::new("application/json");
    let renders = AtomicU64::new(0);
    let master = Some("kuberhealthy-0".to_string());
    let first = served
        .get(master.clone(), 7, at(T0), counting(&renders, None))
        .await;
    for _ in 0..100 {
        let again = served
            .get(master.clone(), 7, at(T0), counting(&renders, None))
            .await;
        assert!(Arc::ptr_eq(&first, &again));
    }
    assert_eq!(renders.load(Ordering::SeqCst), 1);
    assert_eq!(served.renders(), 1);
}

#[tokio::test]
async fn rendered_again_after_a_change_of_the_cache_or_the_holder() {
    let served = Served::<Option<String>>::new("application/json");
    let renders = AtomicU64::new(0);
    let master = Some("kuberhealthy-0".to_string());
    served
        .get(master.clone(), 7, at(T0), counting(&renders, None))
        .await;
    let changed = served
        .get(master.clone(), 8, at(T0), counting(&renders, None))
        .await;
    assert_eq!(changed.body().as_ref(), b"{\"render\": 2}");
    let other_master = served
        .get(
            Some("kuberhealthy-1".into()),
            8,
            at(T0),
            counting(&renders, None),
        )
        .await;
    assert_eq!(other_master.body().as_ref(), b"{\"render\": 3}");
    assert_eq!(renders.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn rendered_again_once_a_result_turns_stale() {
    let served = Served::<()>::new("application/json");
    let renders = AtomicU64::new(0);
    let turn = at(T0) + SignedDuration::from_mins(16);
    served
        .get((), 1, at(T0), counting(&renders, Some(turn)))
        .await;
    let before = served
        .get(
            (),
            1,
            turn - SignedDuration::from_nanos(1),
            counting(&renders, None),
        )
        .await;
    assert_eq!(before.body().as_ref(), b"{\"render\": 1}");
    let after = served.get((), 1, turn, counting(&renders, None)).await;
    assert_eq!(after.body().as_ref(), b"{\"render\": 2}");
    // The new rendering has no turn: it stays.
    served
        .get(
            (),
            1,
            turn + SignedDuration::from_hours(5),
            counting(&renders, None),
        )
        .await;
    assert_eq!(renders.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn churn_settles_but_pinned_inputs_render_at_once() {
    let served = Served::<bool>::settling("text/plain", Duration::from_secs(1));
    let renders = AtomicU64::new(0);
    served.get(false, 1, at(T0), counting(&renders, None)).await;
    // The cache moved half a second later: the previous bytes still answer.
    let half = at(T0) + SignedDuration::from_millis(500);
    let settling = served.get(false, 2, half, counting(&renders, None)).await;
    assert_eq!(settling.body().as_ref(), b"{\"render\": 1}");
    // Leadership changed: rendered at once.
    let leader = served.get(true, 2, half, counting(&renders, None)).await;
    assert_eq!(leader.body().as_ref(), b"{\"render\": 2}");
    // Another change, a second after the last rendering: rendered.
    let later = at(T0) + SignedDuration::from_millis(1500);
    let settled = served.get(true, 3, later, counting(&renders, None)).await;
    assert_eq!(settled.body().as_ref(), b"{\"render\": 3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_rendering() {
    let served = Arc::new(Served::<()>::new("application/json"));
    let renders = Arc::new(AtomicU64::new(0));
    let requests: Vec<_> = (0..32)
        .map(|_| {
            let (served, renders) = (served.clone(), renders.clone());
            tokio::spawn(async move {
                served
                    .get((), 1, at(T0), move || {
                        // Slow enough that the others arrive while it renders.
                        std::thread::sleep(Duration::from_millis(20));
                        counting(&renders, None)()
                    })
                    .await
            })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    assert_eq!(served.renders(), 1);
}

#[test]
fn the_etag_is_a_hash_of_the_bytes() {
    let document = |body: &str| {
        Document::new(
            Rendered {
                body: body.as_bytes().to_vec(),
                ok: true,
                valid_until: None,
            },
            "application/json",
        )
    };
    assert_eq!(document("{}").etag(), document("{}").etag());
    assert_ne!(document("{}").etag(), document("{ }").etag());
    assert_ne!(document("{}").etag(), document("{}").gzip_etag());
    let etag = document("{}").etag();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
        "{etag}"
    );
}

fn page() -> Document {
    Document::new(
        Rendered {
            body: br#"{"OK": true, "Errors": []}"#.repeat(100),
            ok: true,
            valid_until: None,
        },
        "application/json",
    )
}

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    map
}

async fn body_of(response: axum::response::Response) -> Vec<u8> {
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn a_matching_if_none_match_is_answered_304_without_a_body() {
    let document = page();
    let first = respond(&document, &HeaderMap::new(), StatusCode::OK);
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(etag, document.etag());

    let again = respond(
        &document,
        &headers(&[(header::IF_NONE_MATCH, &format!("\"other\", {etag}"))]),
        StatusCode::OK,
    );
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::ETAG], etag.as_str());
    assert!(body_of(again).await.is_empty());

    let changed = respond(
        &document,
        &headers(&[(header::IF_NONE_MATCH, "\"other\"")]),
        StatusCode::OK,
    );
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(body_of(changed).await, document.body().as_ref());
    // `?strict=true` failing: the 503 is never turned into a 304.
    let strict = respond(
        &document,
        &headers(&[(header::IF_NONE_MATCH, &etag)]),
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(strict.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn gzip_bytes_decode_to_the_same_document() {
    let document = page();
    let response = respond(
        &document,
        &headers(&[(header::ACCEPT_ENCODING, "deflate, gzip;q=0.8, br")]),
        StatusCode::OK,
    );
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(response.headers()[header::VARY], "Accept-Encoding");
    assert_eq!(
        response.headers()[header::ETAG],
        document.gzip_etag().as_str()
    );
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let compressed = body_of(response).await;
    assert!(compressed.len() < document.body().len() / 4);
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, document.body().as_ref());
    // Compressed once: later requests share the same bytes.
    assert_eq!(document.gzip().as_ptr(), document.gzip().as_ptr());
}

#[test]
fn accept_encoding_is_read_with_its_qualities() {
    let accepts = |v: &str| respond::accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, v)]));
    assert!(accepts("gzip"));
    assert!(accepts("GZIP, deflate"));
    assert!(accepts("br;q=1.0, gzip;q=0.5"));
    assert!(accepts("*"));
    assert!(!accepts("gzip;q=0"));
    assert!(!accepts("*, gzip;q=0"));
    assert!(!accepts("identity"));
    assert!(!respond::accepts_gzip(&HeaderMap::new()));
}

#[test]
fn if_none_match_matches_listed_weak_and_any() {
    let matches = |v: &str| respond::none_match(&headers(&[(header::IF_NONE_MATCH, v)]), "\"abc\"");
    assert!(matches("\"abc\""));
    assert!(matches("W/\"abc\""));
    assert!(matches("\"x\", \"abc\""));
    assert!(matches("*"));
    assert!(!matches("\"abcd\""));
}

#[test]
fn views_are_bounded_and_the_least_recently_asked_goes_first() {
    let views = Views::<()>::new("application/json");
    let kept = views.view("team-a");
    for i in 0..views::MAX_VIEWS + 10 {
        views.view(&format!("ns-{i}"));
        // `team-a` keeps being asked for, so it is never the oldest.
        views.view("team-a");
    }
    assert_eq!(views.len(), views::MAX_VIEWS);
    assert!(Arc::ptr_eq(&kept, &views.view("team-a")));
}
