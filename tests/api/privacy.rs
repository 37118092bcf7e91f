//! A patient's rights over their data: the full export of a case (admins
//! only), erasure of a closed case (identity and free text gone, figures
//! kept, still shown on the staff pages), and retention from the command
//! line.

use reqwest::StatusCode;
use secondlook::reminders::outbox;
use serde_json::{Value, json};
use sha2::Digest;

use crate::{
    common::{Backend, TestApp, hours_from_now},
    portability::run_cli,
};

crate::on_both_databases!(
    a_case_export_holds_everything_and_only_admins_get_it,
    erasure_removes_the_patient_and_keeps_the_figures,
    retention_erases_only_cases_closed_long_ago,
);

/// Free text and identity put on the case below; none may survive erasure.
const SECRETS: [&str; 22] = [
    "Jordan Secretpatient",
    "jordan.secret@example.org",
    "555 010 2030",
    "Night sweats since March",
    "Takes metformin",
    "Is surgery avoidable",
    "Awaiting scans from Mercy",
    "Pathology slides lost once",
    "Room 4, West Wing",
    "Dr. Hidden Clinician",
    "Follicular lymphoma grade 2",
    "Infection risk is high",
    "Chose watchful waiting for family reasons",
    "Patient decided after talking to her sister",
    "Husband drives her to appointments",
    "Mercy radiology promised the CD by Friday",
    "Sam Secretpartner",
    "sam.secretpartner@example.org",
    "Jordan Secretsigner",
    "The nurse on the phone was wonderful",
    "SECRET-MEMBER-77121",
    "Secretive Mutual Health Plan",
];

/// A case walked to `decision_made`, with every free-text field filled and
/// an email queued about it. Returns its id.
pub async fn closed_case(app: &TestApp) -> i64 {
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Rosa Lind", true).await;
    let new = json!({
        "patient": { "name": SECRETS[0], "email": SECRETS[1], "phone": format!("+1 {}", SECRETS[2]), "timezone": "America/Chicago" },
        "specialty": "Oncology", "reason": "cancer_diagnosis", "urgency": "routine",
        "summary": "Biopsy suggests lymphoma.", "medical_history": SECRETS[3], "medications": SECRETS[4],
        "patient_questions": SECRETS[5],
    });
    let (s, case) = app.post(&token, "/api/v1/cases", new).await;
    assert_eq!(s, StatusCode::CREATED, "{case}");
    let id = case["id"].as_i64().expect("id");
    let path = |p: &str| format!("/api/v1/cases/{id}/{p}");
    let steps: Vec<(&str, String, Value, StatusCode)> = vec![
        ("POST", path("hold"), json!({ "reason": "outside_provider", "note": SECRETS[6] }), StatusCode::OK),
        ("POST", path("notes"), json!({ "body": SECRETS[14] }), StatusCode::CREATED),
        (
            "POST",
            path("contacts"),
            json!({ "with": "provider", "channel": "phone", "direction": "outbound", "summary": SECRETS[15],
                    "follow_up_on": chrono::Utc::now().date_naive().to_string() }),
            StatusCode::CREATED,
        ),
        ("POST", path("resume"), json!({}), StatusCode::OK),
        (
            "PUT",
            path("insurance"),
            json!({ "payer": SECRETS[21], "member_id": SECRETS[20], "second_opinion_covered": "yes",
                    "preapproval": "denied", "preapproval_requested_at": hours_from_now(-72),
                    "preapproval_decided_at": hours_from_now(-24), "appeal_deadline": "2027-02-01",
                    "cost_notes": SECRETS[21] }),
            StatusCode::OK,
        ),
        ("PUT", path("records/pathology_report"), json!({ "status": "received", "note": SECRETS[7] }), StatusCode::OK),
        ("POST", path("portal/partners"), json!({ "name": SECRETS[16], "email": SECRETS[17] }), StatusCode::CREATED),
        ("PUT", path("specialist"), json!({ "specialist_id": specialist }), StatusCode::OK),
        ("POST", path("transition"), json!({ "to": "specialist_chosen" }), StatusCode::OK),
        (
            "PUT",
            path("consultation"),
            json!({ "scheduled_at": hours_from_now(-2), "mode": "in_person", "location": SECRETS[8] }),
            StatusCode::OK,
        ),
        ("POST", path("consent"), json!({ "signer_name": SECRETS[18] }), StatusCode::CREATED),
        ("POST", path("transition"), json!({ "to": "consultation_held" }), StatusCode::OK),
        (
            "POST",
            path("opinions"),
            json!({ "round": "original", "clinician": SECRETS[9], "diagnosis": SECRETS[10],
                    "treatment_plan": "Resection", "recommends_surgery": true, "notes": SECRETS[11] }),
            StatusCode::CREATED,
        ),
        (
            "POST",
            path("opinions"),
            json!({ "round": "second", "clinician": "Dr. Second", "diagnosis": SECRETS[10],
                    "treatment_plan": "Watchful waiting", "recommends_surgery": false }),
            StatusCode::CREATED,
        ),
        (
            "PUT",
            path("comparison"),
            json!({ "diagnosis_agrees": true, "treatment_agrees": false, "risk_notes": SECRETS[11],
                    "outcome_notes": "Similar", "cost_notes": "Cheaper", "summary": "Same diagnosis" }),
            StatusCode::OK,
        ),
        ("POST", path("transition"), json!({ "to": "opinions_compared" }), StatusCode::OK),
        ("PUT", path("decision"), json!({ "chosen_opinion": "second", "reason": SECRETS[12] }), StatusCode::OK),
        ("POST", path("transition"), json!({ "to": "decision_made", "note": SECRETS[13] }), StatusCode::OK),
    ];
    // A records request to a provider, answered.
    let provider = json!({ "name": "Mercy Radiology", "kind": "imaging_center", "fax": "+1 555 0100" });
    let (s, provider) = app.post(&token, "/api/v1/providers", provider).await;
    assert_eq!(s, StatusCode::CREATED, "{provider}");
    let request = json!({ "provider_id": provider["id"], "type": "patient_access", "kinds": ["imaging_mri"],
                          "method": "fax", "sent_at": hours_from_now(-48) });
    let (s, request) = app.post(&token, &path("records-requests"), request).await;
    assert_eq!(s, StatusCode::CREATED, "{request}");
    let receipt = json!({ "kinds": ["imaging_mri"], "received_at": hours_from_now(-1) });
    let (s, b) = app.post(&token, &format!("/api/v1/records-requests/{}/receipts", request["id"]), receipt).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (method, path, body, expected) in steps {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let (s, b) = app.call(Some(&token), method, &path, Some(body)).await;
        assert_eq!(s, expected, "{path}: {b}");
    }
    // The pathology report itself, named and written about the patient.
    let report = crate::documents::pdf(SECRETS[0], 20_000);
    let name = format!("{} pathology.pdf", SECRETS[0]);
    let fields = [("kind", "pathology_report"), ("record_kind", "pathology_report")];
    let (s, b) = crate::documents::upload(app, &token, id, &name, report, &fields).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let draft = outbox::Draft {
        key: format!("records:{id}:test:1"),
        case_id: Some(id as i32),
        kind: "records_nudge".into(),
        recipient_email: SECRETS[1].into(),
        recipient_name: SECRETS[0].into(),
        subject: "Please send your medical records".into(),
        body_text: format!("Dear {}, please send your records.", SECRETS[0]),
        body_html: format!("<p>Dear {}</p>", SECRETS[0]),
        ics: None,
        unsubscribe_url: Some(format!("{}/u/secret", app.base)),
        send_after: chrono::Utc::now() + chrono::Duration::days(1),
    };
    assert!(outbox::enqueue(&app.db, draft).await.expect("queued"));
    // The patient's survey answer, as the portal takes it.
    let case_id = i32::try_from(id).expect("id");
    let visitor = secondlook::portal::Visitor { link_id: 0, case_id, partner: None };
    let answers = secondlook::portal::survey::Answers { satisfaction: 5, recommend: 10, comment: SECRETS[19].into() };
    secondlook::portal::actions::answer_survey(&app.db, &visitor, &visitor.actor(None), &answers)
        .await
        .expect("answered");
    id
}

async fn a_case_export_holds_everything_and_only_admins_get_it(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let id = closed_case(&app).await;
    let path = format!("/api/v1/cases/{id}/export");

    let (s, b) = app.get(&app.advocate.token, &path).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "even the case's own advocate: {b}");
    let (s, _) = app.get(&app.other_advocate.token, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another advocate's case answers like a missing one");
    let (s, _) = app.get(&app.admin.token, "/api/v1/cases/999999/export").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, doc) = app.get(&app.admin.token, &path).await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["format"], "secondlook-case-export");
    assert_eq!(doc["version"], 1);
    assert!(doc["exported_at"].as_str().is_some_and(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()));
    let case = &doc["case"];
    assert_eq!(case["patient"]["name"], SECRETS[0]);
    assert_eq!(case["patient"]["email"], SECRETS[1]);
    let document = &doc["documents"][0];
    assert_eq!(document["kind"], "pathology_report", "{doc}");
    let content = document["content"].as_str().expect("where the content is");
    let response = app.client.get(format!("{}{content}", app.base)).bearer_auth(&app.admin.token).send().await;
    let bytes = response.expect("content").bytes().await.expect("bytes");
    assert_eq!(bytes.len(), 20_000, "the export's link fetches the document");

    // The same export with the documents' files, as one ZIP archive.
    let archive = format!("{path}.zip");
    let (s, _) = app.get(&app.advocate.token, &archive).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let response = app.client.get(format!("{}{archive}", app.base)).bearer_auth(&app.admin.token).send().await;
    let response = response.expect("archive");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let zipped = response.bytes().await.expect("bytes").to_vec();
    // Read back by another implementation: Python's zipfile, checking every CRC.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("export.zip");
    std::fs::write(&file, &zipped).expect("write");
    let script = "import hashlib, json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  assert z.testzip() is None\n\
                  print(json.dumps({n: (hashlib.sha256(z.read(n)).hexdigest(), z.read(n).decode('utf-8', 'replace') if n.endswith('.json') else '') for n in z.namelist()}))";
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&file).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).expect("listing");
    let names: Vec<&String> = entries.keys().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let document = names.iter().find(|n| n.starts_with("documents/")).expect("the document");
    assert!(document.ends_with("pathology.pdf"), "{document}");
    let original = crate::documents::pdf(SECRETS[0], 20_000);
    let want: String = sha2::Sha256::digest(&original).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(entries[document.as_str()][0], want, "the document's own bytes");
    let inside: Value = serde_json::from_str(entries["case.json"][1].as_str().expect("text")).expect("case.json");
    assert_eq!(inside["case"]["patient"]["name"], SECRETS[0]);
    assert_eq!(case["medical_history"], SECRETS[3]);
    assert_eq!(case["records"].as_array().expect("records").len(), 9);
    assert_eq!(case["history"].as_array().expect("history").len(), 5);
    assert_eq!(case["history"][4]["note"], SECRETS[13]);
    assert_eq!(case["decision"]["reason"], SECRETS[12]);
    let opinions = case["opinions"].as_array().expect("opinions");
    assert_eq!(opinions.len(), 2);
    assert_eq!(opinions[0]["clinician"], SECRETS[9]);
    let rounds = doc["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0]["specialist"]["name"], "Dr. Rosa Lind");
    assert_eq!(rounds[0]["consultation_location"], SECRETS[8]);
    assert_eq!(rounds[0]["risk_notes"], SECRETS[11]);
    assert_eq!(doc["notes"][0]["body"], SECRETS[14]);
    assert_eq!(doc["contacts"][0]["summary"], SECRETS[15]);
    assert_eq!(doc["contacts"][0]["with"], "provider");
    let emails = doc["emails"].as_array().expect("emails");
    assert_eq!(emails.len(), 2, "the care partner's invitation and the nudge: {emails:?}");
    assert_eq!(emails[0]["recipient_email"], SECRETS[17]);
    assert_eq!(emails[1]["recipient_email"], SECRETS[1]);
    assert_eq!(emails[1]["status"], "queued");
    assert!(emails[1]["body_text"].as_str().is_some_and(|b| b.contains("please send your records")));
    let portal = &doc["portal"];
    assert_eq!(portal["care_partners"][0]["name"], SECRETS[16]);
    assert_eq!(portal["consents"][0]["signer_name"], SECRETS[18]);
    assert_eq!(portal["survey"]["comment"], SECRETS[19]);
    let actions: Vec<&str> =
        doc["audit"].as_array().expect("audit").iter().filter_map(|e| e["action"].as_str()).collect();
    for wanted in ["case.create", "case.hold", "case.opinion", "case.decision", "case.transition", "access.denied"] {
        assert!(actions.contains(&wanted), "audit lacks {wanted}: {actions:?}");
    }
    assert_eq!(actions.last(), Some(&"case.exported"), "the export itself is on the trail: {actions:?}");
}

/// How many documents the case's erasure entry says it removed.
fn erasures_documents(export: &Value) -> Option<u64> {
    let entries = export["audit"].as_array()?;
    entries.iter().find(|e| e["action"] == "case.erased").and_then(|e| e["detail"]["documents"].as_u64())
}

async fn erasure_removes_the_patient_and_keeps_the_figures(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let open = app.open_case(&app.advocate.token, "Still Open").await;
    let (s, b) = app.post(&app.admin.token, &format!("/api/v1/cases/{open}/erase"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "case_open");

    let id = closed_case(&app).await;
    let erase = format!("/api/v1/cases/{id}/erase");
    let (s, b) = app.post(&app.advocate.token, &erase, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, _) = app.post(&app.other_advocate.token, &erase, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, before) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;

    let (s, b) = app.post(&app.admin.token, &erase, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["already_erased"], false);
    assert!(b["erased_at"].is_string());
    let case = &b["case"];
    assert_eq!(case["patient"]["name"], "");
    assert!(case["patient"]["phone"].is_null());
    assert_eq!(case["reference"], before["reference"], "the pseudonymous reference stays");
    for kept in ["stage", "round", "reason", "urgency", "created_at", "closed_at", "stage_entered_at"] {
        assert_eq!(case[kept], before[kept], "{kept} is kept");
    }
    let stages = |c: &Value| -> Vec<(Value, Value, Value)> {
        c["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| (h["to"].clone(), h["at"].clone(), h["round"].clone()))
            .collect()
    };
    assert_eq!(stages(case), stages(&before), "stage history keeps its stages and dates");
    assert_eq!(case["decision"]["chosen_opinion"], "second");
    assert_eq!(case["opinions"][0]["recommends_surgery"], true);
    assert_eq!(case["comparison"]["treatment_agrees"], false);

    // Nothing that names or describes the patient is left anywhere a person could read it.
    let (s, doc) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}/export")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["documents"].as_array().map(Vec::len), Some(0), "the documents went with the patient data");
    assert_eq!(crate::documents::files_under(&app.files), 0, "and so did their files");
    assert_eq!(erasures_documents(&doc), Some(1), "the erasure counted the document it removed");
    let text = doc.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} survived erasure: {text}");
    }
    assert_eq!(doc["insurance"]["preapproval"], "denied", "the pre-approval's outcome stays for the figures");
    assert!(doc["insurance"]["appeal_deadline"].is_null() && doc["insurance"]["member_id"] == "");
    let (_, overview) = app.get(&app.admin.token, "/api/v1/reports/overview").await;
    assert_eq!(overview["preapprovals"]["decided"], 1, "still counted: {overview}");
    let now = chrono::Utc::now();
    let scanned = secondlook::reports::full_scan::overview_by_scan(&app.db, now).await.expect("scan");
    assert_eq!(scanned.preapprovals.decided, 1, "and the rows still say so");
    assert_eq!(doc["emails"][0]["status"], "cancelled", "a queued email to the patient is never sent");
    let erasures: Vec<&Value> =
        doc["audit"].as_array().expect("audit").iter().filter(|e| e["action"] == "case.erased").collect();
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["actor"], "admin@example.org");

    let (s, found) = app.get(&app.admin.token, "/api/v1/cases?q=secretpatient").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["items"].as_array().expect("items").len(), 0, "the name no longer finds the case");
    let reference = before["reference"].as_str().expect("reference");
    let (_, found) = app.get(&app.admin.token, &format!("/api/v1/cases?q={reference}")).await;
    assert_eq!(found["items"][0]["erased"], true, "{found}");

    // Twice is harmless, and nothing can be written back.
    let (s, again) = app.post(&app.admin.token, &erase, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["already_erased"], true);
    assert_eq!(again["erased_at"], b["erased_at"]);
    let (s, refused) =
        app.patch(&app.admin.token, &format!("/api/v1/cases/{id}"), json!({ "summary": "new text" })).await;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "case_erased");

    // The staff pages show the case with a placeholder.
    let web = app.signed_in("admin@example.org").await;
    for page in [format!("/cases/{id}"), format!("/cases/{id}/summary")] {
        let response = web.get(format!("{}{page}", app.base)).send().await.expect("page");
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let html = response.text().await.expect("html");
        assert!(html.contains("Patient data erased"), "{page}: {html}");
        assert!(html.contains(reference), "{page}");
    }
}

async fn retention_erases_only_cases_closed_long_ago(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let url = app.settings.database.url.expose().to_string();
    let workdir = tempfile::tempdir().expect("workdir");
    let mut ids = Vec::new();
    for name in ["Old Closed", "Recent Closed", "Old Open"] {
        ids.push(app.open_case(&app.advocate.token, name).await);
    }
    for id in &ids[..2] {
        let (s, b) =
            app.move_case(&app.advocate.token, *id, json!({ "to": "withdrawn", "note": "Patient stopped" })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let long_ago =
        (chrono::Utc::now() - chrono::Duration::days(3 * 365)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    app.sql(&format!("UPDATE cases SET closed_at = '{long_ago}', created_at = '{long_ago}' WHERE id = {}", ids[0]))
        .await;
    // An open case never has a closing date; one set by hand must not get it erased.
    app.sql(&format!("UPDATE cases SET closed_at = '{long_ago}' WHERE id = {}", ids[2])).await;

    let off = run_cli(&url, workdir.path(), &["retention", "run-once"], &[]).await;
    assert!(!off.0, "retention is off by default");
    assert!(off.2.contains("retention is off"), "{}", off.2);
    let bad = [("SECONDLOOK__RETENTION__ERASE_CLOSED_AFTER", "two years")];
    let refused = run_cli(&url, workdir.path(), &["retention", "run-once"], &bad).await;
    assert!(!refused.0);
    assert!(refused.2.contains("retention.erase_closed_after"), "{}", refused.2);

    let on = [("SECONDLOOK__RETENTION__ERASE_CLOSED_AFTER", "2y")];
    let (ok, out, err) = run_cli(&url, workdir.path(), &["retention", "run-once"], &on).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("cases erased: 1,"), "{out}");
    let erased = |case: &Value| case["erased_at"].is_string();
    let (_, old) = app.get(&app.admin.token, &format!("/api/v1/cases/{}", ids[0])).await;
    assert!(erased(&old), "{old}");
    assert_eq!(old["patient"]["name"], "");
    for id in &ids[1..] {
        let (_, kept) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
        assert!(!erased(&kept), "{kept}");
        assert_ne!(kept["patient"]["name"], "");
    }
    let (ok, out, _) = run_cli(&url, workdir.path(), &["retention", "run-once"], &on).await;
    assert!(ok && out.contains("cases erased: 0,"), "a second run finds nothing: {out}");
    let (_, doc) = app.get(&app.admin.token, &format!("/api/v1/cases/{}/export", ids[0])).await;
    let by: Vec<&Value> =
        doc["audit"].as_array().expect("audit").iter().filter(|e| e["action"] == "case.erased").collect();
    assert_eq!(by.len(), 1);
    assert_eq!(by[0]["actor"], "system:retention");
}
