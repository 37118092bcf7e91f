//! End to end in headless Chromium through WebDriver: an advocate's day
//! (sign in, open a case, work it through every stage with the forms' "Save
//! and …" actions, counting the posts), finding the closed case again by a
//! name typed without accents, a note typed while the session lapsed and
//! sent after signing in again, a PDF uploaded for a checklist item and
//! downloaded again, an admin assigning a case, the phone-width
//! caseload, the admin overview, a failed sign-in and a forged cross-site
//! post refused. Every page the walk opens is checked with axe-core (from
//! `tests/browser/node_modules`, installed by `npm ci --prefix tests/browser`)
//! and must have no accessibility violations. Screenshots go to
//! `target/screenshots/`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Backend, PASSWORD, TestApp};

crate::on_both_databases!(
    an_advocates_day_in_the_browser,
    a_patient_and_a_care_partner_in_the_browser,
    records_from_a_provider_and_insurance_in_the_browser,
);

struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    /// axe-core's script, or `None` when it is not installed (only outside CI).
    axe: Option<String>,
    /// Forms submitted since the count was last reset.
    posts: std::cell::Cell<u32>,
}

/// axe-core as `npm ci --prefix tests/browser` installs it.
fn axe_source() -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("axe-core is required under CI=true: npm ci --prefix tests/browser")
        }
        Err(_) => {
            eprintln!("skipping the accessibility checks: run `npm ci --prefix tests/browser` to install axe-core");
            None
        }
    }
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
    Some(Browser {
        client: client.expect("a WebDriver session within 20 s"),
        _driver: child,
        _profile: profile,
        shots,
        axe: axe_source(),
        posts: std::cell::Cell::new(0),
    })
}

impl Browser {
    /// Saves a screenshot of the page, after checking it with axe-core.
    async fn shot(&self, name: &str) {
        self.check_accessibility(name).await;
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Runs every axe-core rule on the page; any violation fails the test,
    /// naming the rule and the elements.
    async fn check_accessibility(&self, page: &str) {
        let Some(axe) = &self.axe else { return };
        let loaded = self.client.execute("return typeof window.axe !== 'undefined';", vec![]).await;
        if !matches!(loaded, Ok(Value::Bool(true))) {
            self.client.execute(&format!("{axe}\nreturn true;"), vec![]).await.expect("load axe-core");
        }
        let script = "const done = arguments[arguments.length - 1]; \
            axe.run(document, { resultTypes: ['violations'] }) \
              .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + \
                 v.nodes.map(n => n.target.join(' ')).join(', ')))) \
              .catch(e => done(['axe-core failed: ' + e]));";
        let found = self.client.execute_async(script, vec![]).await.expect("run axe-core");
        let violations: Vec<String> = serde_json::from_value(found).expect("a list of violations");
        assert!(violations.is_empty(), "{page}: accessibility violations:\n{}", violations.join("\n"));
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
        self.posts.set(self.posts.get() + 1);
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

    /// Sends a file through the upload form `form` (with its progress-bar
    /// script, which writes the answer into the page) and waits for the
    /// answer's message.
    async fn upload(&self, form: &str, path: &std::path::Path) {
        let input = self.client.find(Locator::Css(&format!("{form} input[type=file]"))).await.expect("file input");
        input.send_keys(&path.display().to_string()).await.expect("choose the file");
        self.click(&format!("{form} button[type=submit]")).await;
        for _ in 0..150 {
            let answered =
                self.client.execute("return !!document.querySelector('.flash, .error-banner');", vec![]).await;
            if matches!(answered, Ok(Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no answer to the upload from {form}");
    }

    /// Brings `css` into view, for a screenshot of that part of the page.
    async fn scroll_to(&self, css: &str) {
        let script = "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});";
        self.client.execute(script, vec![json!(css)]).await.expect("scroll");
    }

    async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.open(&format!("{base}/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit("form[action='/login'] button").await;
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

    // The whole case, intake to decision, with the combined actions. The
    // same walk took 15 posts when every save needed its own "Move".
    browser.posts.set(0);
    browser.open(&format!("{base}/cases/new")).await;
    browser.fill("#patient\\.name", "José Núñez").await;
    browser.fill("#patient\\.email", "jose@example.org").await;
    browser.fill("#specialty", "Oncology").await;
    browser.choose("#reason", "cancer_diagnosis").await;
    browser.fill("#patient_questions", "Is surgery needed now?\nWhat if we wait?").await;
    browser.shot("new-case").await;
    browser.submit("form[action='/cases/new'] button[type=submit]").await;
    let case_path = browser.path().await;
    assert!(case_path.starts_with("/cases/"), "{case_path}");
    let text = browser.text().await;
    assert!(text.contains("José Núñez") && text.contains("opened"), "{text}");
    assert!(text.contains("Not yet: choose a specialist first"));
    browser.shot("case-new").await;

    // The checklist is one form: two records in one save.
    browser.choose("#status-lab_results", "received").await;
    browser.choose("#status-imaging_ct", "not_applicable").await;
    browser.submit("form[action$='/records'] button:not([name])").await;
    assert!(browser.text().await.contains("2 records updated."), "{}", browser.text().await);
    assert!(browser.text().await.contains("1 received, 7 still requested, 1 not needed."));

    // A document for a checklist item: started from its row, sent by the
    // page's form (through its progress-bar script), listed, downloaded.
    let files = tempfile::tempdir().expect("files");
    let report = files.path().join("Pathology report.pdf");
    let pdf = crate::documents::pdf("browser upload", 150_000);
    std::fs::write(&report, &pdf).expect("write the PDF");
    let link = browser.client.find(Locator::Css("#record-pathology_report .upload-link")).await.expect("upload link");
    let href = link.attr("href").await.expect("href").expect("an address");
    assert!(href.ends_with("?upload_for=pathology_report#documents"), "{href}");
    browser.open(&format!("{base}{href}")).await;
    assert_eq!(
        browser.client.find(Locator::Css("#upload-kind")).await.expect("kind").prop("value").await.ok().flatten(),
        Some("pathology_report".to_string()),
        "the row's kind is chosen"
    );
    browser.shot("document-upload").await;
    let input = browser.client.find(Locator::Css("#upload-file")).await.expect("file input");
    input.send_keys(&report.display().to_string()).await.expect("choose the file");
    browser.click("#upload button[type=submit]").await;
    let mut listed = false;
    for _ in 0..150 {
        let flash = browser.client.execute("return document.querySelector('#documents .flash')?.textContent;", vec![]);
        if let Ok(Value::String(text)) = flash.await {
            assert_eq!(text, "“Pathology report.pdf” uploaded. Pathology / biopsy report is marked received.");
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed, "the upload finished with its message: {}", browser.text().await);
    assert!(browser.text().await.contains("2 received, 6 still requested, 1 not needed."));
    browser.shot("document-listed").await;
    let fetched = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const link = document.querySelector('#documents a.document-name');
             fetch(link.href).then(async r => {
               const bytes = new Uint8Array(await r.arrayBuffer());
               done([r.status, r.headers.get('content-disposition'), bytes.length,
                     String.fromCharCode(...bytes.slice(0, 5))]);
             }).catch(e => done(String(e)));",
            vec![],
        )
        .await
        .expect("download");
    assert_eq!(fetched[0], 200, "{fetched}");
    assert!(fetched[1].as_str().is_some_and(|d| d.starts_with("attachment;")), "{fetched}");
    assert_eq!(fetched[2], pdf.len(), "the whole file comes back");
    assert_eq!(fetched[3], "%PDF-");

    browser.choose("#specialist_id", &specialist).await;
    browser.submit("button[name=then][value=specialist_chosen]").await;
    let text = browser.text().await;
    assert!(text.contains("Specialist chosen. The case moved to “Specialist chosen”."), "{text}");
    assert_eq!(
        browser.client.find(Locator::Css("#specialist_id option:checked")).await.expect("chosen").text().await.ok(),
        Some("Dr. Browser Lind — City Hospital — virtual available".to_string()),
        "the chosen specialist stays selected"
    );

    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    browser.set_value("#scheduled_at", &yesterday.format("%Y-%m-%dT10:00").to_string()).await;
    browser.click("input[name=mode][value=virtual]").await;
    browser.fill("#location", "https://video.example/room").await;
    browser.set_value("#held_at", &yesterday.format("%Y-%m-%dT11:00").to_string()).await;
    browser.submit("button[name=then][value=consultation_held]").await;
    let text = browser.text().await;
    assert!(text.contains("Consultation saved. The case moved to “Consultation held”."), "{text}");

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
    browser.submit("button[name=then][value=opinions_compared]").await;
    assert!(browser.text().await.contains("The case moved to “Opinions compared”."));
    // Closing with records still requested is allowed, with a warning beside the decision.
    let text = browser.text().await;
    assert!(text.contains("Still marked requested: Imaging: X-ray, Imaging: MRI"), "{text}");
    browser.shot("case-compared").await;

    assert_eq!(
        browser.client.find(Locator::Css("#chosen_opinion")).await.expect("select").prop("value").await.ok().flatten(),
        Some(String::new()),
        "the decision starts unchosen"
    );
    browser.choose("#chosen_opinion", "second").await;
    browser.fill("#decision-reason", "The patient prefers surveillance with the option of surgery later.").await;
    browser.submit("button[name=then][value=decision_made]").await;
    let text = browser.text().await;
    assert!(text.contains("Decision recorded. The case moved to “Decision made”."), "{text}");
    assert!(text.contains("The patient follows: Second opinion"), "{text}");
    assert!(text.contains("This case is closed"));
    let posts = browser.posts.get();
    assert!(posts <= 8, "intake to decision in {posts} posts (it took 15 before the combined actions)");
    browser.shot("case-decided").await;

    // The closed case is found again by its patient's name typed without accents, in another order.
    browser.open(&format!("{base}/")).await;
    browser.fill("#f-q", "nunez jose").await;
    browser.submit("form.filters button[type=submit]").await;
    let text = browser.text().await;
    assert!(text.contains("Cases matching “nunez jose”") && text.contains("José Núñez"), "{text}");
    assert!(text.contains("Closed "), "marked closed: {text}");
    browser.shot("search-closed").await;

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

    // A note typed while the session lapses is kept through signing in again.
    let open_case = app.open_case(&app.advocate.token, "Lapsing Session Patient").await;
    browser.open(&format!("{base}/cases/{open_case}")).await;
    let typed = "Called the clinic: slides go out Friday";
    browser.fill("#note-body", typed).await;
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, "DELETE FROM sessions").await.expect("end the sessions");
    browser.submit("form[action$='/notes'] button").await;
    assert!(browser.text().await.contains("Your session ended before this form was sent"));
    browser.shot("session-lapsed").await;
    browser.fill("#password", PASSWORD).await;
    if browser.client.find(Locator::Css("#email")).await.expect("email").prop("value").await.ok().flatten()
        != Some("advocate@example.org".to_string())
    {
        browser.fill("#email", "advocate@example.org").await;
    }
    browser.submit("form[action='/login'] button").await;
    assert!(browser.text().await.contains(typed), "the typed note is on the page to send");
    browser.shot("resend").await;
    browser.submit("form button.primary").await;
    assert_eq!(browser.path().await, format!("/cases/{open_case}"));
    assert!(browser.text().await.contains(typed), "the note was saved");

    browser.submit("form[action='/logout'] button").await;
    assert!(browser.text().await.contains("You are signed out."));
    browser.shot("signed-out").await;
    for (path, name) in [
        ("/forgot-password", "forgot-password"),
        ("/reset-password/not-a-real-link", "reset-link-unknown"),
        ("/u/not-a-real-token", "unsubscribe-unknown"),
    ] {
        browser.open(&format!("{base}{path}")).await;
        browser.shot(name).await;
    }
    browser.sign_in(&base, "admin@example.org", PASSWORD).await;

    // An admin assigns a case from the unassigned queue to an advocate.
    let (s, unassigned) = app.post(&app.admin.token, "/api/v1/cases", crate::common::new_case("Queue Patient")).await;
    assert_eq!(s, reqwest::StatusCode::CREATED, "{unassigned}");
    let queued = unassigned["id"].as_i64().expect("id");
    browser.open(&format!("{base}/?advocate=0")).await;
    assert!(browser.text().await.contains("Queue Patient"));
    browser.shot("unassigned-queue").await;
    browser.open(&format!("{base}/cases/{queued}")).await;
    browser.choose("#assign-advocate", &app.advocate.id.to_string()).await;
    browser.submit("#assign button").await;
    assert!(browser.text().await.contains("Case assigned."), "{}", browser.text().await);
    let (_, assigned) = app.get(&app.advocate.token, &format!("/api/v1/cases/{queued}")).await;
    assert_eq!(assigned["advocate"]["id"].as_i64(), Some(app.advocate.id), "the advocate now has it: {assigned}");

    // Every other page a person reaches, checked the same way.
    for (path, name) in [
        ("/specialists".to_string(), "specialists"),
        ("/specialists/new".to_string(), "specialist-new"),
        ("/account".to_string(), "account"),
        ("/admin/users".to_string(), "admin-users"),
        ("/admin/tokens".to_string(), "admin-tokens"),
        ("/admin/outbox".to_string(), "admin-outbox"),
        (format!("/specialists/{specialist}/edit"), "specialist-edit"),
        ("/cases/999999".to_string(), "not-found"),
        ("/logout".to_string(), "only-posted"),
    ] {
        browser.open(&format!("{base}{path}")).await;
        browser.shot(name).await;
    }
    browser.open(&format!("{base}/admin")).await;
    let overview = browser.text().await;
    assert!(overview.contains("1 decided cases."), "{overview}");
    assert!(overview.contains("Surgery recommended first, not followed"));
    browser.shot("admin").await;

    // The audit trail at phone width: entries become cards that keep to the screen.
    browser.open(&format!("{base}/admin/audit")).await;
    let trail = browser.text().await;
    assert!(trail.contains("case.decision") && trail.contains("Download these entries as CSV"), "{trail}");
    browser.shot("audit").await;
    browser.client.set_window_size(390, 844).await.expect("phone size");
    let fit = browser
        .client
        .execute(
            "const wrap = document.querySelector('.table-wrap'); \
             const row = document.querySelector('table.audit-table tbody tr').getBoundingClientRect(); \
             return [document.documentElement.scrollWidth <= window.innerWidth, wrap.scrollWidth <= wrap.clientWidth, \
                     row.right <= window.innerWidth];",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(fit, json!([true, true, true]), "the page and each entry fit the phone");
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

/// The portal link in the newest `.eml` file to `email` in `dir`.
fn portal_link_in_mail(dir: &std::path::Path, base: &str, email: &str) -> String {
    let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir)
        .expect("mail folder")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let raw = std::fs::read_to_string(entry.path()).ok()?;
            let to = raw.lines().find(|l| l.starts_with("To:"))?.to_string();
            let at = entry.metadata().ok()?.modified().ok()?;
            to.contains(email).then_some((at, raw))
        })
        .collect();
    found.sort_by_key(|(at, _)| *at);
    let (_, raw) = found.pop().unwrap_or_else(|| panic!("no email to {email}"));
    let text = crate::mail::part(&raw, "text/plain");
    let start = format!("{base}/p/");
    let at = text.find(&start).unwrap_or_else(|| panic!("no portal link in {text}"));
    text[at..].chars().take_while(|c| !c.is_whitespace()).collect()
}

/// The patient portal end to end in Chromium, at phone width as most
/// patients will use it: the link from a sent email (file transport), a
/// PDF sent for a checklist item, a question added, consent signed, a care
/// partner invited who opens their own link, sees the status and cannot
/// sign; an expired link and the new-link flow; the advocate's view of it all.
async fn a_patient_and_a_care_partner_in_the_browser(backend: Backend) {
    let mail = tempfile::tempdir().expect("mail folder");
    let mail_dir = mail.path().to_path_buf();
    let Some(app) = TestApp::start_with(backend, |s| {
        s.mail.transport = secondlook::config::MailTransport::File;
        s.mail.file_dir = mail_dir.display().to_string();
    })
    .await
    else {
        return;
    };
    let Some(browser) = launch(backend).await else { return };
    let base = app.base.clone();
    let deliver = || async {
        let reminders = app.reminders();
        let report = reminders.send_due().await.expect("send");
        assert_eq!(report.failed, 0, "{report:?}");
    };
    let id = app.open_case(&app.advocate.token, "Jordan Patient").await;
    let (status, body) = app.post(&app.advocate.token, &format!("/api/v1/cases/{id}/portal-link"), json!({})).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    deliver().await;
    let link = portal_link_in_mail(&mail_dir, &base, "patient@example.org");

    browser.client.set_window_size(390, 844).await.expect("phone size");
    browser.open(&link).await;
    assert_eq!(browser.path().await, "/portal");
    let page = browser.text().await;
    assert!(page.contains("Hello Jordan") && page.contains("Avery Advocate"), "{page}");
    browser.shot("portal-phone").await;
    let fits = browser.client.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]);
    assert_eq!(fits.await.expect("measure"), Value::Bool(true), "no sideways scrolling on a phone");

    // A PDF for the lab results, from the row of the checklist.
    let files = tempfile::tempdir().expect("files");
    let labs = files.path().join("Blood tests March.pdf");
    std::fs::write(&labs, crate::documents::pdf("portal upload", 120_000)).expect("write the PDF");
    browser.upload("form:has(input[name=record_kind][value=lab_results])", &labs).await;
    let page = browser.text().await;
    assert!(page.contains("Thank you: “Blood tests March.pdf” was sent as your lab results."), "{page}");
    assert!(page.contains("Blood tests March.pdf — "), "listed as sent");
    browser.scroll_to("#records").await;
    browser.shot("portal-records-phone").await;

    browser.fill("#questions-new", "Is the biopsy conclusive?").await;
    browser.submit("form:has(#questions-new) button").await;
    assert!(browser.text().await.contains("Question added."));
    assert_eq!(
        browser
            .client
            .find(Locator::Css("#questions-0"))
            .await
            .expect("the question")
            .prop("value")
            .await
            .ok()
            .flatten(),
        Some("Is the biopsy conclusive?".to_string())
    );

    browser.fill("#full_name", "Jordan Patient").await;
    browser.click("input[name=agree]").await;
    browser.scroll_to("#consent").await;
    browser.shot("portal-consent-phone").await;
    browser.submit("form[action='/portal/consent'] button").await;
    assert!(browser.text().await.contains("the authorization is signed"), "{}", browser.text().await);

    browser.fill("#partner-name", "Sam Rivera").await;
    browser.fill("#partner-email", "sam@example.org").await;
    browser.submit("form[action='/portal/partners'] button").await;
    assert!(browser.text().await.contains("Sam Rivera is invited"), "{}", browser.text().await);
    browser.submit("form[action='/portal/sign-out'] button").await;

    // The care partner's own link: the status, not the signature.
    deliver().await;
    let partner_link = portal_link_in_mail(&mail_dir, &base, "sam@example.org");
    browser.open(&partner_link).await;
    let page = browser.text().await;
    assert!(page.contains("Sam Rivera (care partner of Jordan Patient)"), "{page}");
    assert!(page.contains("Where things stand") && page.contains("Records requested"));
    assert!(!browser.has("form[action='/portal/consent']").await, "a care partner cannot sign");
    assert!(!browser.has("form[action='/portal/partners']").await, "nor invite others");
    browser.shot("portal-partner-phone").await;

    // An expired link offers a new one, which works.
    app.sql("UPDATE portal_links SET expires_at = created_at").await;
    browser.open(&link).await;
    assert!(browser.text().await.contains("This link has expired"));
    browser.shot("portal-expired-phone").await;
    browser.fill("#email", "patient@example.org").await;
    browser.submit("form[action$='/renew'] button").await;
    assert!(browser.text().await.contains("Check your email"));
    deliver().await;
    let fresh = portal_link_in_mail(&mail_dir, &base, "patient@example.org");
    assert_ne!(fresh, link);
    browser.open(&fresh).await;
    assert!(browser.text().await.contains("Hello Jordan"));

    // The advocate sees what happened, and by whom.
    browser.client.set_window_size(1280, 1000).await.expect("desktop size");
    browser.sign_in(&base, "advocate@example.org", PASSWORD).await;
    assert!(browser.text().await.contains("New from patient"), "the caseload marks the case");
    browser.open(&format!("{base}/cases/{id}")).await;
    let page = browser.text().await;
    for seen in [
        "New from the patient since",
        "Signed in the portal by Jordan Patient",
        "Sam Rivera (sam@example.org)",
        "the patient, in the portal",
        "consent to share records signed",
        "care partner invited",
        "Lab results",
    ] {
        assert!(page.contains(seen), "the case page shows {seen:?}: {page}");
    }
    browser.scroll_to("#portal").await;
    browser.shot("case-portal-desktop").await;
    browser.client.close().await.expect("close the browser");
}

async fn records_from_a_provider_and_insurance_in_the_browser(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let Some(browser) = launch(backend).await else { return };
    let base = app.base.clone();
    let token = app.advocate.token.clone();
    let id = app.open_case(&token, "Jordan Patient").await;
    let fits = || async {
        let wide = browser.client.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]);
        assert_eq!(wide.await.expect("measure"), Value::Bool(true), "no sideways scrolling on a phone");
    };
    browser.sign_in(&base, "advocate@example.org", PASSWORD).await;

    // The provider, from the directory.
    browser.open(&format!("{base}/providers/new")).await;
    browser.fill("#name", "Mercy General Hospital").await;
    browser.choose("#kind", "hospital").await;
    browser.fill("#fax", "+1 312 555 0100").await;
    browser.fill("#address", "100 Main St\nChicago IL 60601").await;
    browser.fill("#timezone", "America/Chicago").await;
    browser.submit("main form button[type=submit]").await;
    assert!(browser.text().await.contains("Mercy General Hospital"), "{}", browser.text().await);
    browser.shot("providers-desktop").await;
    let (_, providers) = app.get(&token, "/api/v1/providers").await;
    let mercy = providers["items"][0]["id"].as_i64().expect("provider id");

    // The request, from the case page: two records, faxed now.
    browser.open(&format!("{base}/cases/{id}")).await;
    let form = format!("form[action='/cases/{id}/records-requests']");
    browser.click("#records-requests > details > summary").await;
    browser.choose("#rr-provider", &mercy.to_string()).await;
    let untick = format!("document.querySelectorAll(\"{form} input[type=checkbox]\").forEach(b => b.checked = false);");
    browser.client.execute(&untick, vec![]).await.expect("untick");
    browser.click(&format!("{form} input[name='kind.lab_results']")).await;
    browser.click(&format!("{form} input[name='kind.pathology_report']")).await;
    browser.choose("#rr-method", "fax").await;
    browser.submit(&format!("{form} button[type=submit]")).await;
    let page = browser.text().await;
    assert!(page.contains("Request to Mercy General Hospital recorded as sent."), "{page}");
    assert!(page.contains("Lab results, Pathology / biopsy report") && page.contains("America/Chicago time"), "{page}");
    let (_, list) = app.get(&token, &format!("/api/v1/cases/{id}/records-requests")).await;
    let request = list["items"][0]["id"].as_i64().expect("request id");
    browser.scroll_to("#records-requests").await;
    browser.shot("case-records-request-desktop").await;

    // Its letter, to print: the law, the date to answer by, what is asked for.
    browser.submit(&format!("a[href='/records-requests/{request}/letter']")).await;
    let letter = browser.text().await;
    for said in
        ["45 CFR 164.524", "so the time to answer ends on", "Lab results", "Pathology / biopsy report", "Mercy General"]
    {
        assert!(letter.contains(said), "the letter says {said:?}: {letter}");
    }
    browser.shot("records-letter-desktop").await;
    browser.client.set_window_size(390, 844).await.expect("phone size");
    browser.shot("records-letter-phone").await;
    fits().await;
    browser.client.set_window_size(1280, 1000).await.expect("desktop size");
    browser.submit(&format!("form[action='/records-requests/{request}/letter'] button")).await;
    let page = browser.text().await;
    assert!(page.contains("The letter is saved among the documents as “Records request"), "{page}");

    // What arrived: the lab results first, then the rest.
    let receipt = format!("form[action='/records-requests/{request}/receipt']");
    browser.click(&format!("#request-{request} details:has({receipt}) > summary")).await;
    browser.click(&format!("{receipt} input[name='kind.lab_results']")).await;
    browser.submit(&format!("{receipt} button[type=submit]")).await;
    let page = browser.text().await;
    assert!(page.contains("Recorded; still waiting on Mercy General Hospital for part of it."), "{page}");
    browser.scroll_to(&format!("#request-{request}")).await;
    browser.shot("case-records-partial-desktop").await;
    browser.click(&format!("#request-{request} details:has({receipt}) > summary")).await;
    browser.click(&format!("{receipt} input[name='kind.pathology_report']")).await;
    browser.submit(&format!("{receipt} button[type=submit]")).await;
    let page = browser.text().await;
    assert!(page.contains("Everything asked of Mercy General Hospital has arrived."), "{page}");
    let (_, fulfilled) = app.get(&token, &format!("/api/v1/records-requests/{request}")).await;
    assert_eq!(fulfilled["state"], "fulfilled");
    assert_eq!(fulfilled["received"], json!(["lab_results", "pathology_report"]));

    // Insurance: the pre-approval the case waited for arrives; the case goes on.
    let (status, _) =
        app.post(&token, &format!("/api/v1/cases/{id}/hold"), json!({ "reason": "insurance_preapproval" })).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    browser.open(&format!("{base}/cases/{id}")).await;
    browser.click("#insurance details > summary").await;
    browser.fill("#ins-payer", "Blue Valley Health").await;
    browser.fill("#ins-plan", "PPO Gold").await;
    browser.fill("#ins-member_id", "BVH-0044-9921").await;
    browser.choose("#ins-covered", "yes").await;
    browser.choose("#ins-preapproval", "approved").await;
    browser.fill("#ins-reference", "PA-77120").await;
    browser.fill("#ins-cost", "Covered in network; $40 specialist copay.").await;
    browser.submit("form[action$='/insurance'] button[type=submit]").await;
    let page = browser.text().await;
    assert!(page.contains("the case is off hold and its clock runs again"), "{page}");
    assert!(page.contains("••••9921") && !page.contains("BVH-0044-9921"), "masked for an advocate");
    browser.scroll_to("#insurance").await;
    browser.shot("case-insurance-desktop").await;

    browser.client.set_window_size(390, 844).await.expect("phone size");
    browser.open(&format!("{base}/cases/{id}")).await;
    browser.scroll_to("#records-requests").await;
    browser.shot("case-records-phone").await;
    fits().await;
    browser.client.set_window_size(1280, 1000).await.expect("desktop size");

    // The figures an admin reads.
    browser.submit("form[action='/logout'] button").await;
    browser.sign_in(&base, "admin@example.org", PASSWORD).await;
    browser.open(&format!("{base}/admin")).await;
    let page = browser.text().await;
    assert!(
        page.contains("How providers answer records requests") && page.contains("Mercy General Hospital"),
        "{page}"
    );
    assert!(page.contains("Insurance pre-approvals"), "{page}");
    browser.scroll_to("#records-providers").await;
    browser.shot("admin-records-figures-desktop").await;
    browser.client.close().await.expect("close the browser");
}
