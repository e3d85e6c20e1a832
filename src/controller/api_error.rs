//! What went wrong with a request to the API server, classified once for every caller: the
//! conflict that fences writes, the refusals, and the failures worth retrying.

/// The kind of a failed API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 409: the object changed since it was read (or already exists). The writer re-reads
    /// and decides again; this is how runs are fenced.
    Conflict,
    /// 404.
    NotFound,
    /// 401 or 403: a missing permission.
    Forbidden,
    /// 400 or 422: the API server refused the object.
    Invalid,
    /// 429, 5xx, or the request did not get an answer: try again later.
    Unavailable,
    /// Anything else.
    Other,
}

impl ApiErrorKind {
    /// The `error` label of metrics.
    pub fn label(self) -> &'static str {
        match self {
            ApiErrorKind::Conflict => "conflict",
            ApiErrorKind::NotFound => "not_found",
            ApiErrorKind::Forbidden => "forbidden",
            ApiErrorKind::Invalid => "invalid",
            ApiErrorKind::Unavailable => "unavailable",
            ApiErrorKind::Other => "other",
        }
    }
}

pub fn classify(error: &kube::Error) -> ApiErrorKind {
    match error {
        kube::Error::Api(status) => match status.code {
            409 => ApiErrorKind::Conflict,
            404 => ApiErrorKind::NotFound,
            401 | 403 => ApiErrorKind::Forbidden,
            400 | 422 => ApiErrorKind::Invalid,
            429 | 500..=599 => ApiErrorKind::Unavailable,
            _ => ApiErrorKind::Other,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => ApiErrorKind::Unavailable,
        _ => ApiErrorKind::Other,
    }
}

/// The API server's own words for a refusal (its message), else the client's error.
pub fn reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("m", "R").with_code(code),
        ))
    }

    #[test]
    fn every_status_code_has_one_kind() {
        assert_eq!(classify(&api(409)), ApiErrorKind::Conflict);
        assert_eq!(classify(&api(404)), ApiErrorKind::NotFound);
        assert_eq!(classify(&api(403)), ApiErrorKind::Forbidden);
        assert_eq!(classify(&api(401)), ApiErrorKind::Forbidden);
        assert_eq!(classify(&api(422)), ApiErrorKind::Invalid);
        assert_eq!(classify(&api(503)), ApiErrorKind::Unavailable);
        assert_eq!(classify(&api(429)), ApiErrorKind::Unavailable);
        assert_eq!(classify(&api(418)), ApiErrorKind::Other);
        assert_eq!(reason(&api(403)), "m");
    }
}
