//! `http`: v2's http-check. `COUNT` requests to `CHECK_URL`, `SECONDS` apart, with method
//! `REQUEST_TYPE` and body `REQUEST_BODY`; passes when at least `PASSING_PERCENT` of them
//! answer `EXPECTED_STATUS_CODE`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Outcome;
use super::knobs::Knobs;

pub const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub url: String,
    /// How many requests; v2's default 0 means one.
    pub count: u64,
    pub interval: Duration,
    pub passing_percent: f64,
    pub method: &'static str,
    pub body: String,
    pub expected_status: u16,
}

impl Config {
    pub fn read(knobs: &mut Knobs) -> Config {
        let url = knobs.http_url("CHECK_URL");
        let count = knobs.whole("COUNT", 0);
        let interval = Duration::from_secs(knobs.whole("SECONDS", 0));
        let passing_percent = knobs.number("PASSING_PERCENT", 100.0, 0.0, 100.0);
        let method = knobs.choice("REQUEST_TYPE", "GET", METHODS);
        let body = knobs.string("REQUEST_BODY", "{}");
        let expected_status = knobs.number("EXPECTED_STATUS_CODE", 200.0, 100.0, 599.0);
        if expected_status.fract() != 0.0 {
            knobs.invalid(format!(
                "EXPECTED_STATUS_CODE is \"{expected_status}\", expected an HTTP status code such as 200"
            ));
        }
        Config {
            url,
            count,
            interval,
            passing_percent,
            method,
            body,
            expected_status: expected_status as u16,
        }
    }

    pub fn requests(&self) -> u64 {
        self.count.max(1)
    }
}

/// What one request gave: the status code, or why there was none.
pub type Answer = Result<u16, String>;

/// Passes when at least `passing_percent` of the answers are the expected status.
pub fn evaluate(config: &Config, answers: &[Answer]) -> Outcome {
    let total = answers.len();
    if total == 0 {
        return Err(vec![format!("no request to {} was made", config.url)]);
    }
    let passed = answers
        .iter()
        .filter(|a| **a == Ok(config.expected_status))
        .count();
    // Integer comparison of passed/total against the bar, exact at the boundary.
    if passed as f64 * 100.0 >= config.passing_percent * total as f64 {
        return Ok(());
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for answer in answers.iter().filter(|a| **a != Ok(config.expected_status)) {
        let kind = match answer {
            Ok(code) => format!("HTTP {code}"),
            Err(e) => e.clone(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let seen: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}× {k}")).collect();
    Err(vec![format!(
        "{passed} of {total} {} requests to {} answered HTTP {} ({:.1}%), under PASSING_PERCENT {}%; the others: {}",
        config.method,
        config.url,
        config.expected_status,
        passed as f64 * 100.0 / total as f64,
        config.passing_percent,
        seen.join(", ")
    )])
}

pub async fn run(mut knobs: Knobs, time_left: Duration) -> Outcome {
    let config = Config::read(&mut knobs);
    knobs.finish()?;
    crate::checker::client::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(time_left)
        .build()
        .map_err(|e| vec![format!("cannot build an HTTP client: {e}")])?;
    let method = reqwest::Method::from_bytes(config.method.as_bytes())
        .expect("the methods listed are valid");
    let mut answers = Vec::new();
    for i in 0..config.requests() {
        if i > 0 && !config.interval.is_zero() {
            tokio::time::sleep(config.interval).await;
        }
        let mut request = client.request(method.clone(), &config.url);
        if config.method != "GET" {
            request = request
                .header("Content-Type", "application/json")
                .body(config.body.clone());
        }
        answers.push(match request.send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(describe(e)),
        });
    }
    evaluate(&config, &answers)
}

/// A request error with its causes, without the URL (the message names it once).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut k = Knobs::from_pairs(pairs);
        let c = Config::read(&mut k);
        k.finish().unwrap();
        c
    }

    fn answers(ok: usize, bad: usize) -> Vec<Answer> {
        let mut v = vec![Ok(200); ok];
        v.extend(std::iter::repeat_n(Ok(503), bad));
        v
    }

    #[test]
    fn v2_defaults() {
        let c = config(&[("CHECK_URL", "http://127.0.0.1/")]);
        assert_eq!(c.requests(), 1);
        assert_eq!(c.interval, Duration::ZERO);
        assert_eq!(c.passing_percent, 100.0);
        assert_eq!(c.method, "GET");
        assert_eq!(c.body, "{}");
        assert_eq!(c.expected_status, 200);
    }

    #[test]
    fn passing_percentage_at_and_just_under_the_bar() {
        let c = config(&[("CHECK_URL", "http://x/"), ("PASSING_PERCENT", "80")]);
        assert_eq!(evaluate(&c, &answers(8, 2)), Ok(()));
        assert_eq!(evaluate(&c, &answers(9, 1)), Ok(()));
        let e = evaluate(&c, &answers(7, 3)).unwrap_err();
        assert_eq!(
            e,
            [
                "7 of 10 GET requests to http://x/ answered HTTP 200 (70.0%), under PASSING_PERCENT 80%; the others: 3× HTTP 503"
            ]
        );
        // A fractional bar: 2 of 3 is 66.67%, just under 66.7.
        let c = config(&[("CHECK_URL", "http://x/"), ("PASSING_PERCENT", "66.7")]);
        assert!(evaluate(&c, &answers(2, 1)).is_err());
        let c = config(&[("CHECK_URL", "http://x/"), ("PASSING_PERCENT", "66.6")]);
        assert_eq!(evaluate(&c, &answers(2, 1)), Ok(()));
    }

    #[test]
    fn every_request_must_pass_by_default() {
        let c = config(&[("CHECK_URL", "http://x/")]);
        assert_eq!(evaluate(&c, &answers(1, 0)), Ok(()));
        let e = evaluate(&c, &[Ok(200), Err("connection refused".into())]).unwrap_err();
        assert!(e[0].contains("1× connection refused"), "{e:?}");
    }

    #[test]
    fn the_expected_status_can_be_anything() {
        let c = config(&[("CHECK_URL", "http://x/"), ("EXPECTED_STATUS_CODE", "404")]);
        assert_eq!(evaluate(&c, &[Ok(404)]), Ok(()));
        assert!(evaluate(&c, &[Ok(200)]).is_err());
    }

    #[test]
    fn bad_knobs_name_the_variable() {
        let mut k = Knobs::from_pairs(&[
            ("COUNT", "many"),
            ("SECONDS", "1.5"),
            ("PASSING_PERCENT", "-5"),
            ("REQUEST_TYPE", "FETCH"),
            ("EXPECTED_STATUS_CODE", "20x"),
        ]);
        Config::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            [
                "CHECK_URL is not set, expected an http:// or https:// URL",
                "COUNT is \"many\", expected a whole number",
                "SECONDS is \"1.5\", expected a whole number",
                "PASSING_PERCENT is \"-5\", expected a number from 0 to 100",
                "REQUEST_TYPE is \"FETCH\", expected one of GET, POST, PUT, DELETE, PATCH",
                "EXPECTED_STATUS_CODE is \"20x\", expected a number from 100 to 599",
            ]
        );
        let mut k = Knobs::from_pairs(&[
            ("CHECK_URL", "http://x/"),
            ("EXPECTED_STATUS_CODE", "200.5"),
        ]);
        Config::read(&mut k);
        assert_eq!(
            k.finish().unwrap_err(),
            ["EXPECTED_STATUS_CODE is \"200.5\", expected an HTTP status code such as 200"]
        );
    }
}
