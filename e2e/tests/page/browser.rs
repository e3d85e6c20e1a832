//! A real headless Debian Chromium, driven over WebDriver by `chromedriver`, both started by
//! the test and stopped with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use kuberhealthy_e2e::process::ProcessGroup;
use kuberhealthy_e2e::session::workspace_root;
use kuberhealthy_e2e::wait_until;
use serde_json::{Value, json};

/// A browser session and the driver behind it.
pub struct Browser {
    pub client: Client,
    _driver: ProcessGroup,
}

impl Browser {
    /// Starts `chromedriver` on a free port of the host and a headless Chromium session.
    pub async fn start(log_dir: &Path) -> Result<Browser> {
        for program in ["chromium", "chromedriver"] {
            which(program).with_context(|| {
                format!(
                    "{program} is not installed: run e2e/tools/install-chromium.sh (make e2e does)"
                )
            })?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let driver = ProcessGroup::spawn("chromedriver", cmd, &log_dir.join("chromedriver.log"))?;
        let profile = log_dir.join("chromium-profile");
        std::fs::create_dir_all(&profile)?;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": which("chromium")?,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let url = format!("http://127.0.0.1:{port}");
        // The driver listens a moment after it starts.
        let client = wait_until(
            "chromedriver to start a session",
            Duration::from_secs(60),
            || {
                let capabilities = capabilities.clone();
                let url = url.clone();
                async move {
                    // Plain HTTP to the local driver: no TLS stack needed.
                    let client = ClientBuilder::new(HttpConnector::new())
                        .capabilities(capabilities)
                        .connect(&url)
                        .await?;
                    Ok(Some(client))
                }
            },
        )
        .await?;
        Ok(Browser {
            client,
            _driver: driver,
        })
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Saves a screenshot of the window as `target/e2e-artifacts/page/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = workspace_root().join("target/e2e-artifacts/page");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        Ok(())
    }
}

fn which(program: &str) -> Result<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()?;
    anyhow::ensure!(out.status.success(), "{program} is not on PATH");
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}
