//! Accessibility checks for the browser tests: the four variants of a page (desktop 1280×800 and
//! phone 390×844, light and dark) set through chromium-driver's CDP passthrough, axe-core
//! (vendored in `axe/`, never fetched) run in the page, and the browser's console log read back
//! through chromium-driver's `/se/log` (fantoccini 0.22 wraps neither).

use fantoccini::Client;
use serde_json::{Value, json};

use crate::browser::{Driver, shot};

/// axe-core 4.14.1 from the npm registry (see `axe/README.md`).
const AXE_SOURCE: &str = include_str!("axe/axe.min.js");

/// One way to look at a page.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub phone: bool,
    pub dark: bool,
}

/// Desktop and phone, light and dark: every page is checked in all four.
pub const VARIANTS: [Variant; 4] = [
    Variant {
        phone: false,
        dark: false,
    },
    Variant {
        phone: false,
        dark: true,
    },
    Variant {
        phone: true,
        dark: false,
    },
    Variant {
        phone: true,
        dark: true,
    },
];

impl Variant {
    /// `desktop-light`, `phone-dark`, …: the tail of the screenshot names.
    pub fn name(self) -> String {
        let size = if self.phone { "phone" } else { "desktop" };
        let scheme = if self.dark { "dark" } else { "light" };
        format!("{size}-{scheme}")
    }

    /// CSS pixels of the viewport, and the device pixel ratio.
    fn metrics(self) -> (u32, u32, u32) {
        if self.phone {
            (390, 844, 2)
        } else {
            (1280, 800, 1)
        }
    }
}

/// One browser seen through chromium-driver's own endpoints.
pub struct Inspector {
    http: reqwest::Client,
    session: String,
}

impl Inspector {
    pub async fn new(driver: &Driver, browser: &Client) -> Self {
        let id = browser
            .session_id()
            .await
            .unwrap()
            .expect("a WebDriver session id");
        Self {
            http: reqwest::Client::new(),
            session: format!("{}/session/{id}", driver.url()),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/{path}", self.session))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("chromium-driver {path}: {e}"));
        let status = response.status();
        let mut reply: Value = response.json().await.unwrap();
        assert!(
            status.is_success(),
            "chromium-driver {path}: {status} {reply}"
        );
        reply["value"].take()
    }

    /// One Chrome DevTools Protocol command on the browser's current tab.
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        self.post(
            "goog/cdp/execute",
            json!({ "cmd": command, "params": params }),
        )
        .await
    }

    /// Sets the viewport, touch and `prefers-color-scheme` of `variant`; they last across
    /// navigations in this tab until the next call.
    pub async fn emulate(&self, variant: Variant) {
        let (width, height, scale) = variant.metrics();
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": scale,
                    "mobile": variant.phone }),
        )
        .await;
        let touch = if variant.phone {
            json!({ "enabled": true, "maxTouchPoints": 5 })
        } else {
            json!({ "enabled": false })
        };
        self.cdp("Emulation.setTouchEmulationEnabled", touch).await;
        let scheme = if variant.dark { "dark" } else { "light" };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
    }

    /// The browser's log entries since the last call (`level`, `message`, `source`).
    pub async fn take_log(&self) -> Vec<Value> {
        match self.post("se/log", json!({ "type": "browser" })).await {
            Value::Array(entries) => entries,
            other => panic!("/se/log answered {other}"),
        }
    }
}

/// Checks page after page and collects every finding, so one run lists them all.
pub struct Sweep<'a> {
    browser: &'a Client,
    inspector: Inspector,
    findings: Vec<String>,
    pages: usize,
}

impl<'a> Sweep<'a> {
    /// Starts with an empty console log: what came before the first page is not its fault.
    pub async fn new(driver: &Driver, browser: &'a Client) -> Self {
        let inspector = Inspector::new(driver, browser).await;
        inspector.take_log().await;
        Self {
            browser,
            inspector,
            findings: Vec::new(),
            pages: 0,
        }
    }

    /// The current page in every variant: zero axe violations of any impact, no sideways
    /// scrolling, a screenshot `<page>-<variant>.png`; then no console error since the previous
    /// page. `status` is what the page answers (for an error page, checked in the log).
    pub async fn check(&mut self, page: &str, status: u16) {
        let url = self.browser.current_url().await.unwrap().to_string();
        for variant in VARIANTS {
            self.inspector.emulate(variant).await;
            let (width, _, _) = variant.metrics();
            let seen = self
                .browser
                .execute(
                    "return [matchMedia('(prefers-color-scheme: dark)').matches, innerWidth,
                             matchMedia('(pointer: coarse)').matches, typeof axe]",
                    vec![],
                )
                .await
                .unwrap();
            let seen = seen.as_array().cloned().unwrap_or_default();
            assert_eq!(
                seen.get(..3).unwrap_or_default(),
                [json!(variant.dark), json!(width), json!(variant.phone)],
                "{page}: the emulation of {} did not apply ({seen:?})",
                variant.name()
            );
            if seen.get(3) != Some(&json!("object")) {
                self.browser
                    .execute(&format!("{AXE_SOURCE}\n;return typeof axe"), vec![])
                    .await
                    .unwrap();
            }
            let found = self.browser.execute_async(AXE_RUN, vec![]).await.unwrap();
            let where_ = format!("{page} {} ({url})", variant.name());
            match found {
                Value::Array(violations) => self.findings.extend(violations.iter().map(|v| {
                    format!(
                        "{where_}: axe {} ({}): {} at {}",
                        v["id"].as_str().unwrap_or("?"),
                        v["impact"].as_str().unwrap_or("?"),
                        v["help"].as_str().unwrap_or(""),
                        v["targets"]
                    )
                })),
                other => self
                    .findings
                    .push(format!("{where_}: axe did not run: {other}")),
            }
            let overflow = self
                .browser
                .execute(
                    "return document.documentElement.scrollWidth - innerWidth",
                    vec![],
                )
                .await
                .unwrap();
            if overflow.as_i64().is_some_and(|px| px > 0) {
                self.findings.push(format!(
                    "{where_}: scrolls sideways by {overflow} px (WCAG 1.4.10 reflow)"
                ));
            }
            shot(self.browser, &format!("{page}-{}", variant.name())).await;
        }
        // An error page's status is the browser's one "Failed to load resource" line about the
        // document itself: expected (and required, so the page answers the status it says),
        // while every other error line is a finding.
        let own_status = format!(
            "{url} - Failed to load resource: the server responded with a status of {status} "
        );
        let mut saw_status = false;
        for entry in self.inspector.take_log().await {
            let message = entry["message"].as_str().unwrap_or_default();
            if status >= 400 && !saw_status && message.starts_with(&own_status) {
                saw_status = true;
            } else if entry["level"] == "SEVERE" {
                self.findings
                    .push(format!("{page} ({url}): console error: {message}"));
            }
        }
        if status >= 400 && !saw_status {
            self.findings.push(format!(
                "{page} ({url}): the browser saw no {status} answer"
            ));
        }
        self.pages += 1;
    }

    /// Fails with every finding, one a line; passes only when there is none.
    pub fn finish(self, at_least: usize) {
        assert!(
            self.pages >= at_least,
            "only {} pages were checked, expected {at_least}",
            self.pages
        );
        assert!(
            self.findings.is_empty(),
            "{} findings on {} pages × {} variants:\n{}",
            self.findings.len(),
            self.pages,
            VARIANTS.len(),
            self.findings.join("\n")
        );
    }
}

/// Waits for running transitions (a scheme switch fades the buttons' colours; contrast is
/// measured on the final ones), then runs every axe rule (best practices included) and hands
/// back each violation's id, impact, help and target selectors.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
const finite = document.getAnimations()
  .filter(a => a.effect && a.effect.getComputedTiming().iterations !== Infinity)
  .map(a => a.finished.catch(() => null));
Promise.all(finite)
  .then(() => axe.run(document, { resultTypes: ['violations'] }))
  .then(r => done(r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(' ')),
  }))))
  .catch(e => done('error: ' + e));
"#;
