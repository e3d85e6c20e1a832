//! Documents served from the cache (the status JSON, v3's JSON, `/metrics`) rendered once per
//! change of what they show, not once per request. A [`Served`] keeps the last rendering with
//! the inputs it was made from and the moment it turns stale by the clock; requests share its
//! bytes, its strong `ETag` (a hash of the bytes, the same on every replica) and its gzip
//! encoding, compressed at most once per rendering.

pub mod pages;
mod respond;
mod views;

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use jiff::Timestamp;

pub use respond::respond;
pub use views::Views;

/// What a render function produces.
pub struct Rendered {
    pub body: Vec<u8>,
    /// The document's verdict (the status page's `OK`), for `?strict=true`.
    pub ok: bool,
    /// The next moment the document changes by the clock alone (a result turning stale).
    pub valid_until: Option<Timestamp>,
}

/// One rendering, as requests share it.
pub struct Document {
    body: Bytes,
    etag: String,
    content_type: &'static str,
    ok: bool,
    gzip: OnceLock<Bytes>,
}

impl Document {
    pub(crate) fn new(mut rendered: Rendered, content_type: &'static str) -> Document {
        // Kept for as long as it is current: without the spare capacity of its growth
        // (up to half again its size).
        rendered.body.shrink_to_fit();
        let digest = ring::digest::digest(&ring::digest::SHA256, &rendered.body);
        // 128 bits of SHA-256: a strong validator, stable across replicas and restarts.
        let etag = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Document {
            body: Bytes::from(rendered.body),
            etag,
            content_type,
            ok: rendered.ok,
            gzip: OnceLock::new(),
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn ok(&self) -> bool {
        self.ok
    }

    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// The strong entity tag of the identity encoding, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.etag)
    }

    /// The strong entity tag of the gzip encoding (another representation, another tag).
    pub fn gzip_etag(&self) -> String {
        format!("\"{}-gzip\"", self.etag)
    }

    /// The body gzip-compressed, computed by the first request that asks for it.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.body.len() / 8),
                flate2::Compression::default(),
            );
            encoder
                .write_all(&self.body)
                .expect("writing to memory cannot fail");
            let mut gzip = encoder.finish().expect("writing to memory cannot fail");
            gzip.shrink_to_fit();
            Bytes::from(gzip)
        })
    }
}

/// The last rendering and what it was made from.
struct Entry<I> {
    inputs: I,
    churn: u64,
    rendered_at: Timestamp,
    valid_until: Option<Timestamp>,
    document: Arc<Document>,
}

impl<I: PartialEq> Entry<I> {
    /// Whether this rendering still shows what a rendering from these inputs at `now` would.
    /// A moved `churn` counter waits for `settle` after the last rendering.
    fn current(&self, inputs: &I, churn: u64, now: Timestamp, settle: Duration) -> bool {
        let settled = churn == self.churn
            || now.duration_since(self.rendered_at)
                < jiff::SignedDuration::try_from(settle).unwrap_or_default();
        self.inputs == *inputs && settled && self.valid_until.is_none_or(|t| now < t)
    }
}

/// A document rendered once per change of its inputs. `I` are inputs whose change is
/// rendered at once (the Lease holder, leadership); `churn` is a counter of changes (the
/// cache's) rendered at most once per `settle` after the previous rendering.
pub struct Served<I> {
    content_type: &'static str,
    settle: Duration,
    last: RwLock<Option<Arc<Entry<I>>>>,
    /// One renderer at a time; the others wait for its bytes instead of rendering too.
    rendering: tokio::sync::Mutex<()>,
    renders: std::sync::atomic::AtomicU64,
}

impl<I: PartialEq + Clone> Served<I> {
    pub fn new(content_type: &'static str) -> Served<I> {
        Served::settling(content_type, Duration::ZERO)
    }

    /// A document whose churn is rendered at most once per `settle`.
    pub fn settling(content_type: &'static str, settle: Duration) -> Served<I> {
        Served {
            content_type,
            settle,
            last: RwLock::new(None),
            rendering: tokio::sync::Mutex::new(()),
            renders: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the document was rendered.
    pub fn renders(&self) -> u64 {
        self.renders.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn current(&self, inputs: &I, churn: u64, now: Timestamp) -> Option<Arc<Document>> {
        let last = self.last.read().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|entry| entry.current(inputs, churn, now, self.settle))
            .map(|entry| entry.document.clone())
    }

    /// The document for `inputs` and `churn` at `now`: the last rendering while it is
    /// current, else `render`'s (rendered by one request while the others wait for it).
    pub async fn get(
        &self,
        inputs: I,
        churn: u64,
        now: Timestamp,
        render: impl FnOnce() -> Rendered,
    ) -> Arc<Document> {
        let rendered = self
            .try_get(inputs, churn, now, || {
                Ok::<_, std::convert::Infallible>(render())
            })
            .await;
        match rendered {
            Ok(document) => document,
            Err(never) => match never {},
        }
    }

    /// [`Served::get`] with a render that may fail; a failure is not kept.
    pub async fn try_get<E>(
        &self,
        inputs: I,
        churn: u64,
        now: Timestamp,
        render: impl FnOnce() -> Result<Rendered, E>,
    ) -> Result<Arc<Document>, E> {
        if let Some(document) = self.current(&inputs, churn, now) {
            return Ok(document);
        }
        let _rendering = self.rendering.lock().await;
        // Another request may have rendered it while this one waited.
        if let Some(document) = self.current(&inputs, churn, now) {
            return Ok(document);
        }
        let rendered = render()?;
        let valid_until = rendered.valid_until;
        let document = Arc::new(Document::new(rendered, self.content_type));
        self.renders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Entry {
            inputs,
            churn,
            rendered_at: now,
            valid_until,
            document: document.clone(),
        }));
        // The rendering's working memory, and the rendering it replaced, are free now.
        crate::controller::memory::freed();
        Ok(document)
    }
}

#[cfg(test)]
mod tests;
