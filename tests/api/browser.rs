//! End to end in headless Chromium through WebDriver: an advocate's day
//! (sign in, open a case, work it through every stage with the forms), the
//! admin overview reflecting it, a failed sign-in, and a forged cross-site
//! post refused. Screenshots of the main pages go to `target/screenshots/`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Backend, PASSWORD, TestApp};

crate::on_both_databases!(an_advocates_day_in_the_browser);

struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    names.iter().flat_map(|name| paths.iter().map(move |dir| dir.join(name))).find(|p| p.is_file())
}

/// Starts ChromeDriver and a headless Chromium, or `None` when they are not
/// installed (which fails the test instead under `CI=true`).
async fn launch(backend: Backend) -> Option<Browser> {
    let driver = find_program(&["chromedriver"]);
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let (Some(driver), Some(chromium)) = (driver, chromium) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium and chromedriver are required under CI=true");
        }
        eprintln!("skipping the browser test: chromium or chromedriver is not installed");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().expect("profile folder");
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let Value::Object(caps) = caps else { unreachable!("built as an object") };
    let url = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("screenshots")
        .join(format!("{backend:?}").to_lowercase());
    std::fs::create_dir_all(&shots).expect("screenshot folder");
    Some(Browser { client: client.expect("a WebDriver session within 20 s"), _driver: child, _profile: profile, shots })
}

impl Browser {
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    async fn choose(&self, css: &str, value: &str) {
        let select = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        select.select_by_value(value).await.unwrap_or_else(|e| panic!("{css} = {value}: {e}"));
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// Sets an input's value directly: typing into date and time pickers
    /// depends on the browser's locale.
    async fn set_value(&self, css: &str, value: &str) {
        let script = "document.querySelector(arguments[0]).value = arguments[1];";
        self.client.execute(script, vec![json!(css), json!(value)]).await.expect("set value");
    }

    /// Clicks a submit button and waits for the next page to load.
    async fn submit(&self, css: &str) {
        self.client.execute("window.__before_submit = true;", vec![]).await.expect("mark page");
        self.click(css).await;
        for _ in 0..150 {
            let fresh = self
                .client
                .execute("return window.__before_submit !== true && document.readyState === 'complete';", vec![])
                .await;
            if matches!(fresh, Ok(Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no new page after clicking {css}");
    }

    async fn text(&self) -> String {
        self.client.find(Locator::Css("body")).await.expect("body").text().await.expect("text")
    }

    async fn path(&self) -> String {
        self.client.current_url().await.expect("url").path().to_string()
    }

    async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.open(&format!("{base}/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("form[action='/login'] button").await;
    }

    async fn move_to(&self, stage: &str) {
        self.submit(&format!("form.move:has(input[value='{stage}']) button")).await;
        let text = self.text().await;
        assert!(text.contains("The case moved to"), "moving to {stage}: {text}");
    }
}

async fn an_advocates_day_in_the_browser(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(browser) = launch(backend).await else { return };
    let base = app.base.clone();
    let specialist = app.add_specialist("Dr. Browser Lind", true).await.to_string();

    // A failed sign-in says so, without saying which part was wrong.
    browser.sign_in(&base, "advocate@example.org", "wrong password!").await;
    assert!(browser.text().await.contains("Email or password is wrong."));
    assert_eq!(browser.path().await, "/login");
    browser.shot("login-failed").await;

    browser.sign_in(&base, "advocate@example.org", PASSWORD).await;
    assert_eq!(browser.path().await, "/");
    assert!(browser.text().await.contains("My caseload"));

    browser.open(&format!("{base}/cases/new")).await;
    browser.fill("#patient\\.name", "Robin Browser").await;
    browser.fill("#patient\\.email", "robin@example.org").await;
    browser.fill("#specialty", "Oncology").await;
    browser.choose("#reason", "cancer_diagnosis").await;
    browser.fill("#patient_questions", "Is surgery needed now?\nWhat if we wait?").await;
    browser.shot("new-case").await;
    browser.submit("form[action='/cases/new'] button[type=submit]").await;
    let case_path = browser.path().await;
    assert!(case_path.starts_with("/cases/"), "{case_path}");
    let text = browser.text().await;
    assert!(text.contains("Robin Browser") && text.contains("opened"), "{text}");
    assert!(text.contains("Not yet: choose a specialist first"));

    browser.choose("#status-lab_results", "received").await;
    browser.submit("#record-lab_results button").await;
    browser.choose("#specialist_id", &specialist).await;
    browser.submit("form[action$='/specialist'] button").await;
    browser.move_to("specialist_chosen").await;

    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%dT10:00").to_string();
    browser.set_value("#scheduled_at", &yesterday).await;
    browser.click("input[name=mode][value=virtual]").await;
    browser.fill("#location", "https://video.example/room").await;
    browser.submit("form[action$='/consultation'] button").await;
    browser.move_to("consultation_held").await;

    for (round, clinician, plan, surgery) in [
        ("original", "Dr. First", "Surgery within a month", true),
        ("second", "Dr. Browser Lind", "Active surveillance", false),
    ] {
        browser.click("#opinions details summary").await;
        browser.choose("#round", round).await;
        browser.fill("#op-clinician", clinician).await;
        browser.fill("#op-diagnosis", "Early-stage prostate cancer").await;
        browser.fill("#op-treatment_plan", plan).await;
        if surgery {
            browser.click("input[name=recommends_surgery]").await;
        }
        browser.submit("form[action$='/opinions'] button").await;
        assert!(browser.text().await.contains("Opinion saved."));
    }
    browser.click("input[name=diagnosis_agrees][value=yes]").await;
    browser.click("input[name=treatment_agrees][value=no]").await;
    browser.fill("#cmp-risk_notes", "Surgery: incontinence risk. Surveillance: regular biopsies.").await;
    browser.fill("#cmp-summary", "Same diagnosis; the plans differ.").await;
    browser.submit("form[action$='/comparison'] button").await;
    browser.move_to("opinions_compared").await;
    browser.shot("case-compared").await;

    browser.choose("#chosen_opinion", "second").await;
    browser.fill("#decision-reason", "The patient prefers surveillance with the option of surgery later.").await;
    browser.submit("form[action$='/decision'] button").await;
    browser.move_to("decision_made").await;
    let text = browser.text().await;
    assert!(text.contains("The patient follows: Second opinion"), "{text}");
    assert!(text.contains("This case is closed"));
    browser.shot("case-decided").await;

    browser.open(&format!("{base}{case_path}/summary")).await;
    let summary = browser.text().await;
    assert!(summary.contains("Is surgery needed now?") && summary.contains("Lab results"), "{summary}");
    browser.shot("summary").await;

    // Another case still open, so the list has a row to show.
    app.open_case(&app.advocate.token, "Still Open Patient").await;
    browser.open(&format!("{base}/")).await;
    browser.shot("caseload").await;
    browser.client.set_window_size(390, 844).await.expect("phone size");
    // On a phone the list is stacked cards that fit the screen, each led by its due date.
    let cards = browser
        .client
        .execute(
            "const row = document.querySelector('table.cards tbody tr'); \
             const due = row.querySelector('td[data-label=Due]').getBoundingClientRect(); \
             const cells = [...row.querySelectorAll('td')].map(c => c.getBoundingClientRect()); \
             return [document.documentElement.scrollWidth <= window.innerWidth, due.width > 0 && due.height > 0, \
                     cells.every(c => due.top <= c.top), cells.every(c => c.right <= window.innerWidth)];",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(cards, json!([true, true, true, true]), "phone caseload: cards within the screen, due date first");
    browser.shot("caseload-phone").await;
    browser.client.set_window_size(1280, 1000).await.expect("desktop size");

    browser.submit("form[action='/logout'] button").await;
    assert!(browser.text().await.contains("You are signed out."));
    browser.sign_in(&base, "admin@example.org", PASSWORD).await;
    browser.open(&format!("{base}/admin")).await;
    let overview = browser.text().await;
    assert!(overview.contains("1 decided cases."), "{overview}");
    assert!(overview.contains("Surgery recommended first, not followed"));
    browser.shot("admin").await;

    // The audit trail at phone width: the page keeps to the screen, its table scrolls sideways.
    browser.open(&format!("{base}/admin/audit")).await;
    let trail = browser.text().await;
    assert!(trail.contains("case.decision") && trail.contains("Download these entries as CSV"), "{trail}");
    browser.shot("audit").await;
    browser.client.set_window_size(390, 844).await.expect("phone size");
    let fit = browser
        .client
        .execute(
            "const wrap = document.querySelector('.table-wrap'); \
             return [document.documentElement.scrollWidth <= window.innerWidth, wrap.scrollWidth > wrap.clientWidth];",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(fit, json!([true, true]), "page fits the phone, table scrolls");
    browser.shot("audit-phone").await;
    browser.client.set_window_size(1280, 1000).await.expect("desktop size");

    // A page on another origin posts a form into SecondLook while the admin is signed in.
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let evil_url = format!("http://localhost:{}", evil.local_addr().expect("address").port());
    let target = format!("{base}/cases/new");
    let page = format!(
        "<!doctype html><title>Win a prize</title><form method=post action=\"{target}\">\
         <input name=\"patient.name\" value=\"Forged Person\"><input name=\"patient.email\" value=\"f@example.org\">\
         <input name=\"specialty\" value=\"Oncology\"><input name=\"reason\" value=\"other\">\
         <input name=\"urgency\" value=\"routine\"><button id=go type=submit>Claim</button></form>"
    );
    let evil_app =
        axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    tokio::spawn(async move { axum::serve(evil, evil_app).await });
    browser.open(&evil_url).await;
    browser.submit("#go").await;
    assert!(browser.text().await.contains("sent from another site"), "{}", browser.text().await);
    let (_, all) = app.get(&app.admin.token, "/api/v1/cases?q=forged").await;
    assert!(all["items"].as_array().expect("items").is_empty(), "the forged post created nothing");

    browser.client.close().await.expect("close the browser");
}
