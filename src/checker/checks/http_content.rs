//! `http-content`: v2's http-content-check. GETs `TARGET_URL` within `TIMEOUT_DURATION`;
//! passes when the body contains `TARGET_STRING`.

use std::time::Duration;

use super::Outcome;
use super::knobs::Knobs;
use crate::api::duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub url: String,
    pub target: String,
    pub timeout: Duration,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        Config {
            url: knobs.http_url("TARGET_URL"),
            target: knobs.required("TARGET_STRING", "the text the page must contain"),
            timeout: knobs.duration("TIMEOUT_DURATION", Duration::from_secs(30)),
        }
    }
}

/// Passes when `body` contains the target string.
pub fn evaluate(config: &Config, status: u16, body: &str) -> Outcome {
    if body.contains(&config.target) {
        return Ok(());
    }
    Err(vec![format!(
        "TARGET_STRING {:?} was not found in the {} bytes {} answered (HTTP {status})",
        config.target,
        body.len(),
        config.url
    )])
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    crate::checker::client::install_tls_provider();
    let limit = config.timeout.min(time_left);
    let client = reqwest::Client::builder()
        .timeout(limit)
        .build()
        .map_err(|e| vec![format!("cannot build an HTTP client: {e}")])?;
    let failed = |e: reqwest::Error| {
        let timed_out = if e.is_timeout() {
            format!(" (TIMEOUT_DURATION {})", duration::format(limit))
        } else {
            String::new()
        };
        vec![format!(
            "GET {} failed{timed_out}: {}",
            config.url,
            super::http::describe(e)
        )]
    };
    let response = client.get(&config.url).send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(failed)?;
    evaluate(&config, status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_must_contain_the_string() {
        let mut k = Knobs::from_pairs(&[
            ("TARGET_URL", "http://127.0.0.1/"),
            ("TARGET_STRING", "ready"),
        ]);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(evaluate(&c, 200, "all ready here"), Ok(()));
        assert_eq!(
            evaluate(&c, 503, "not Ready").unwrap_err(),
            [
                "TARGET_STRING \"ready\" was not found in the 9 bytes http://127.0.0.1/ answered (HTTP 503)"
            ]
        );
    }

    #[test]
    fn bad_knobs_name_the_variable() {
        let mut k = Knobs::from_pairs(&[("TIMEOUT_DURATION", "30")]);
        Config::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            [
                "TARGET_URL is not set, expected an http:// or https:// URL",
                "TARGET_STRING is not set, expected the text the page must contain",
                "TIMEOUT_DURATION is \"30\", expected a duration such as 30s, 10m or 1h",
            ]
        );
    }
}
