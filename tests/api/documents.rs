//! Documents on a case, on both databases and both storages (a local
//! directory and a real S3-compatible server): the bytes come back as they
//! went in, the stored bytes never hold the plaintext, the size limit and
//! the accepted kinds hold, another advocate sees nothing, and a storage
//! that is down refuses the upload cleanly and leaves no document behind.

use std::path::Path;

use reqwest::{StatusCode, multipart};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    common::{Backend, TestApp},
    s3_server::S3Server,
};

crate::on_both_databases!(
    documents_on_local_storage,
    documents_on_s3_storage,
    a_local_storage_that_fails_keeps_no_document,
    an_s3_server_that_stops_answers_503_and_then_works_again,
    documents_are_worked_from_the_case_page,
    an_upload_cut_off_halfway_leaves_nothing,
    deleted_documents_are_purged_after_their_time,
);

/// Small enough for quick tests, large enough for several sealed chunks.
const LIMIT: u64 = 1024 * 1024;

/// A PDF of `size` bytes with `marker` in its text.
pub fn pdf(marker: &str, size: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    while bytes.len() < size {
        bytes.extend_from_slice(format!("% {marker} line {}\n", bytes.len()).as_bytes());
    }
    bytes.truncate(size);
    bytes
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Posts an upload form as `token`; the answer's status and JSON.
pub async fn upload(
    app: &TestApp,
    token: &str,
    case: i64,
    file_name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    form = form.part("file", multipart::Part::bytes(bytes).file_name(file_name.to_string()));
    let response = app
        .client
        .post(format!("{}/api/v1/cases/{case}/documents", app.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload sent");
    let status = response.status();
    let text = response.text().await.expect("answer");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn download(app: &TestApp, token: &str, id: i64) -> reqwest::Response {
    app.client
        .get(format!("{}/api/v1/documents/{id}/content", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("download sent")
}

/// Whether any file under `dir` holds `needle`.
pub fn found_under(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            found_under(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// How many stored files are under `dir`.
pub fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
}

async fn document_rows(app: &TestApp) -> i64 {
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one_raw(Statement::from_string(backend, "SELECT COUNT(*) AS n FROM documents"))
        .await
        .expect("count")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

async fn audit_actions(app: &TestApp, case: i64) -> Vec<String> {
    app.reads.flush().await;
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            backend,
            format!("SELECT action FROM audit_log WHERE case_id = {case} ORDER BY id"),
        ))
        .await
        .expect("audit");
    rows.iter().map(|r| r.try_get::<String>("", "action").expect("action")).collect()
}

async fn documents_on_local_storage(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.documents.max_file_bytes = LIMIT).await else { return };
    let files = app.files.clone();
    documents_round_trip(&app, &files, &files).await;
}

async fn documents_on_s3_storage(backend: Backend) {
    let Some(s3) = S3Server::start().await else { return };
    let Some(app) = TestApp::start_with(backend, |s| {
        s.documents.max_file_bytes = LIMIT;
        s3.configure(s);
    })
    .await
    else {
        return;
    };
    // The server keeps each object as a file in the bucket's directory
    // (and notes about objects, kept even after they are deleted, beside it).
    let bucket = s3.root.path().join(crate::s3_server::BUCKET);
    documents_round_trip(&app, &bucket, s3.root.path()).await;
    assert_eq!(files_under(&app.files), 0, "nothing was written to the local directory");
}

/// What every storage must do; `stored` is where its files land on disk,
/// `on_disk` everything the storage writes.
async fn documents_round_trip(app: &TestApp, stored: &Path, on_disk: &Path) {
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Dana Document").await;
    let marker = "MARKER-7f3a-PLAINTEXT";
    let original = pdf(marker, 300 * 1024 + 123);

    // Uploaded for a checklist item, and marked received with it.
    let (s, doc) = upload(
        app,
        &token,
        case,
        "../Dana's MRI report.pdf",
        original.clone(),
        &[("kind", "imaging_mri"), ("record_kind", "imaging_mri"), ("mark_received", "true")],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["name"], "Dana's MRI report.pdf", "the path is dropped from the name");
    assert_eq!(doc["content_type"], "application/pdf");
    assert_eq!(doc["size"], original.len());
    assert_eq!(doc["sha256"], hex_sha256(&original));
    assert_eq!(doc["kind"], "imaging_mri");
    assert_eq!(doc["uploaded_by"]["name"], "Avery Advocate");
    assert_eq!(doc["damaged"], false);
    let id = doc["id"].as_i64().expect("id");
    let (_, case_now) = app.get(&token, &format!("/api/v1/cases/{case}")).await;
    let mri = case_now["records"].as_array().expect("records").iter().find(|r| r["kind"] == "imaging_mri").cloned();
    assert_eq!(mri.map(|r| r["status"].clone()), Some(json!("received")), "{case_now}");

    // Listed, described, and downloaded byte for byte as an attachment.
    let (s, listed) = app.get(&token, &format!("/api/v1/cases/{case}/documents")).await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let (s, described) = app.get(&token, &format!("/api/v1/documents/{id}")).await;
    assert_eq!((s, described["sha256"].clone()), (StatusCode::OK, doc["sha256"].clone()));
    let response = download(app, &token, id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(disposition.starts_with("attachment;") && disposition.contains("MRI%20report.pdf"), "{disposition}");
    let body = response.bytes().await.expect("body");
    assert_eq!(hex_sha256(&body), hex_sha256(&original), "the bytes come back unchanged");

    // What reached the storage is sealed: the plaintext is nowhere in it.
    assert!(files_under(stored) >= 1, "the file is in the storage");
    assert!(!found_under(on_disk, marker.as_bytes()), "the marker is not stored in the clear");
    assert!(!found_under(on_disk, b"%PDF-1.7"), "not even the file's header is");

    // A program renamed as a PDF is refused, and nothing is kept of it.
    let program = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0\x01\0\0\0".repeat(100);
    let before = files_under(stored);
    let (s, refused) = upload(app, &token, case, "results.pdf", program, &[("kind", "lab_results")]).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
    assert_eq!(refused["error"]["code"], "unsupported_document_type");
    // Over the size limit: 413, and nothing kept.
    let (s, refused) = upload(app, &token, case, "big.pdf", pdf("big", LIMIT as usize + 1), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    assert_eq!(refused["error"]["code"], "too_large");
    // Not a form at all: the standard JSON error.
    let (s, refused) = app.post(&token, &format!("/api/v1/cases/{case}/documents"), json!({"file": "x"})).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
    assert_eq!(refused["error"]["code"], "unsupported_media_type");
    // A form that does not say what the file is: nothing kept either.
    let (s, refused) = upload(app, &token, case, "x.pdf", pdf("x", 2000), &[("kind", "x-ray")]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["error"]["fields"]["kind"].is_string(), "{refused}");
    let (s, refused) = upload(app, &token, case, "x.pdf", pdf("x", 2000), &[("kind", "other"), ("round", "7")]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["error"]["fields"]["round"].is_string(), "{refused}");
    assert_eq!(files_under(stored), before, "refused uploads leave no file");
    assert_eq!(document_rows(app).await, 1, "and no row");

    // Another advocate's case: every document route answers 404.
    let other = app.other_advocate.token.clone();
    for path in [format!("/api/v1/documents/{id}"), format!("/api/v1/cases/{case}/documents")] {
        let (s, _) = app.get(&other, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(download(app, &other, id).await.status(), StatusCode::NOT_FOUND);
    let (s, _) = upload(app, &other, case, "mine.pdf", pdf("x", 1000), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.call(Some(&other), reqwest::Method::DELETE, &format!("/api/v1/documents/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Renamed; deleted (gone from the advocate's list); restored by an admin.
    let (s, renamed) = app
        .call(
            Some(&token),
            reqwest::Method::PATCH,
            &format!("/api/v1/documents/{id}"),
            Some(json!({"name": "MRI 2026.pdf"})),
        )
        .await;
    assert_eq!((s, renamed["name"].clone()), (StatusCode::OK, json!("MRI 2026.pdf")), "{renamed}");
    let (s, deleted) = app.call(Some(&token), reqwest::Method::DELETE, &format!("/api/v1/documents/{id}"), None).await;
    assert_eq!(s, StatusCode::OK, "{deleted}");
    assert!(deleted["deleted_at"].is_string());
    let (_, listed) = app.get(&token, &format!("/api/v1/cases/{case}/documents")).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(download(app, &token, id).await.status(), StatusCode::NOT_FOUND);
    let restore = format!("/api/v1/documents/{id}/restore");
    let (s, _) = app.post(&token, &restore, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admins restore");
    let (s, restored) = app.post(&app.admin.token, &restore, json!({})).await;
    assert_eq!((s, restored["deleted_at"].clone()), (StatusCode::OK, Value::Null), "{restored}");
    assert_eq!(download(app, &token, id).await.status(), StatusCode::OK);

    // Each step left its line in the case's trail.
    let actions = audit_actions(app, case).await;
    // Marking the checklist item received is recorded as the checklist records it.
    for action in [
        "case.record",
        "document.uploaded",
        "document.downloaded",
        "document.updated",
        "document.deleted",
        "document.restored",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }

    // A stored file gone missing shows as damaged, not as a server error.
    std::fs::remove_dir_all(stored).expect("remove the files");
    std::fs::create_dir_all(stored).expect("an empty storage");
    let response = download(app, &token, id).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["error"]["code"], "document_damaged", "{answer}");
    let (_, described) = app.get(&token, &format!("/api/v1/documents/{id}")).await;
    assert_eq!(described["damaged"], true);
}

async fn a_local_storage_that_fails_keeps_no_document(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Lee Local").await;
    // The directory is taken away and a plain file put in its place: every
    // write to it now fails.
    std::fs::remove_dir_all(&app.files).expect("remove");
    std::fs::write(&app.files, b"not a directory").expect("block");
    let (s, answer) = upload(&app, &token, case, "scan.pdf", pdf("down", 200_000), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "document_storage_unavailable");
    assert_eq!(document_rows(&app).await, 0, "no row for a file that was not stored");
    std::fs::remove_file(&app.files).expect("unblock");
    std::fs::create_dir(&app.files).expect("directory back");
    let (s, answer) = upload(&app, &token, case, "scan.pdf", pdf("up", 200_000), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::CREATED, "{answer}");
}

async fn an_s3_server_that_stops_answers_503_and_then_works_again(backend: Backend) {
    let Some(mut s3) = S3Server::start().await else { return };
    let Some(app) = TestApp::start_with(backend, |s| s3.configure(s)).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Sam Stopped").await;
    let (s, first) = upload(&app, &token, case, "a.pdf", pdf("a", 50_000), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");

    s3.stop().await;
    let (s, answer) = upload(&app, &token, case, "b.pdf", pdf("b", 50_000), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "document_storage_unavailable");
    let response = download(&app, &token, first["id"].as_i64().expect("id")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "a download says so too");
    assert_eq!(document_rows(&app).await, 1, "the refused upload left no row");

    s3.resume().await;
    let (s, answer) = upload(&app, &token, case, "b.pdf", pdf("b", 50_000), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::CREATED, "{answer}");
    let response = download(&app, &token, first["id"].as_i64().expect("id")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.expect("body").len(), 50_000);
}

/// Posts the case page's upload form as a signed-in browser would.
async fn upload_from_page(
    app: &TestApp,
    browser: &reqwest::Client,
    case: i64,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut form = multipart::Form::new();
    for (field, value) in fields {
        form = form.text(field.to_string(), value.to_string());
    }
    form = form.part("file", multipart::Part::bytes(bytes).file_name(name.to_string()));
    let response =
        browser.post(format!("{}/cases/{case}/documents", app.base)).multipart(form).send().await.expect("upload sent");
    let status = response.status();
    (status, response.text().await.expect("page"))
}

async fn documents_are_worked_from_the_case_page(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.documents.max_file_bytes = 64 * 1024).await else { return };
    let case = app.open_case(&app.advocate.token, "Paige Pages").await;
    let browser = app.signed_in("advocate@example.org").await;

    // The checklist row starts an upload with its kind chosen and marked.
    let page = browser.get(format!("{}/cases/{case}?upload_for=lab_results", app.base)).send().await.expect("page");
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<option value="lab_results" selected>"#), "the kind is chosen");
    assert!(html.contains(r#"name="mark_received" value="true" checked"#), "and marking it received");
    assert!(html.contains("Up to 64 KiB"), "the limit is stated");

    // A refusal shows the page again, the problem beside the file and the
    // choices kept.
    let fields = [("kind", "lab_results"), ("record_kind", "lab_results"), ("mark_received", "true")];
    let (s, html) = upload_from_page(&app, &browser, case, "labs.pdf", pdf("big", 100 * 1024), &fields).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(html.contains(r#"id="upload-file-error""#) && html.contains("larger than the 64 KiB limit"), "{html}");
    assert!(html.contains(r#"<option value="lab_results" selected>"#), "the choice is kept");
    let (s, html) = upload_from_page(&app, &browser, case, "labs.pdf", b"\x7fELF\x02\x01".repeat(50), &fields).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(html.contains("This kind of file is not accepted"), "{html}");

    // Uploaded: listed, filed under its checklist row, the row received.
    let response = browser
        .post(format!("{}/cases/{case}/documents", app.base))
        .multipart(
            multipart::Form::new()
                .text("kind", "lab_results")
                .text("record_kind", "lab_results")
                .text("mark_received", "true")
                .part(
                    "file",
                    multipart::Part::bytes(b"date,test,value\n2026-11-02,HbA1c,6.1\n".to_vec()).file_name("labs.csv"),
                ),
        )
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html =
        browser.get(format!("{}/cases/{case}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(html.contains("“labs.csv” uploaded. Lab results is marked received."), "{html}");
    assert!(html.contains("1 received, 8 still requested."), "{html}");
    let (_, listed) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case}/documents")).await;
    let id = listed["items"][0]["id"].as_i64().expect("id");
    assert_eq!(listed["items"][0]["content_type"], "text/csv");
    assert!(html.contains(&format!(r#"href="/documents/{id}/download">labs.csv</a>"#)), "{html}");
    let download = browser.get(format!("{}/documents/{id}/download", app.base)).send().await.expect("download");
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.text().await.expect("text").contains("HbA1c"));
    // Only images and PDFs open in the viewer.
    let view = browser.get(format!("{}/documents/{id}/view", app.base)).send().await.expect("view");
    assert_eq!(view.status(), StatusCode::CONFLICT);

    // Renamed and deleted from the page.
    let rename = [("case_id", case.to_string()), ("name", "Labs November.csv".to_string())];
    let response =
        browser.post(format!("{}/documents/{id}/rename", app.base)).form(&rename).send().await.expect("rename");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let summary = browser.get(format!("{}/cases/{case}/summary", app.base)).send().await.expect("summary");
    assert!(summary.text().await.expect("html").contains("<li>Labs November.csv</li>"), "the summary names it");
    let gone = [("case_id", case.to_string())];
    let response =
        browser.post(format!("{}/documents/{id}/delete", app.base)).form(&gone).send().await.expect("delete");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html =
        browser.get(format!("{}/cases/{case}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(html.contains("An admin can restore it") && !html.contains("Labs November.csv</a>"), "{html}");

    // Another advocate reaches none of it.
    let other = app.signed_in("other@example.org").await;
    for path in [format!("/documents/{id}/download"), format!("/documents/{id}/view")] {
        let response = other.get(format!("{}{path}", app.base)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _) = upload_from_page(&app, &other, case, "x.csv", b"a,b\n".to_vec(), &[("kind", "other")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // An admin sees it among the deleted documents and restores it.
    let admin = app.signed_in("admin@example.org").await;
    let html = admin.get(format!("{}/cases/{case}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(html.contains("Deleted documents (1)") && html.contains(&format!("/documents/{id}/restore")), "{html}");
    let response =
        admin.post(format!("{}/documents/{id}/restore", app.base)).form(&gone).send().await.expect("restore");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html =
        browser.get(format!("{}/cases/{case}", app.base)).send().await.expect("page").text().await.expect("html");
    assert!(html.contains("Labs November.csv</a>"), "restored: {html}");
}

async fn an_upload_cut_off_halfway_leaves_nothing(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = TestApp::start(backend).await else { return };
    let case = app.open_case(&app.advocate.token, "Cy Cutoff").await;
    // A client that promises a 600 KB form, sends half of it and goes away.
    let boundary = "cutoffboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nother\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"scan.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let file = pdf("cut", 600_000);
    let length = head.len() + file.len() + format!("\r\n--{boundary}--\r\n").len();
    let address = app.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!(
        "POST /api/v1/cases/{case}/documents HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n",
        app.advocate.token
    );
    socket.write_all(request.as_bytes()).await.expect("headers");
    socket.write_all(head.as_bytes()).await.expect("form head");
    socket.write_all(&file[..300_000]).await.expect("half the file");
    socket.shutdown().await.expect("gone");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    // The server saw the form end early: no document, no file.
    for _ in 0..50 {
        if files_under(&app.files) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(document_rows(&app).await, 0);
    assert_eq!(files_under(&app.files), 0, "no file is left of the cut-off upload");
    let (s, listed) = app.get(&app.advocate.token, &format!("/api/v1/cases/{case}/documents")).await;
    assert_eq!((s, listed["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
}

async fn deleted_documents_are_purged_after_their_time(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let case = app.open_case(&token, "Pia Purge").await;
    let (s, kept) = upload(&app, &token, case, "kept.pdf", pdf("kept", 5_000), &[("kind", "letter")]).await;
    assert_eq!(s, StatusCode::CREATED, "{kept}");
    let (s, gone) = upload(&app, &token, case, "gone.pdf", pdf("gone", 5_000), &[("kind", "letter")]).await;
    assert_eq!(s, StatusCode::CREATED, "{gone}");
    let gone_id = gone["id"].as_i64().expect("id");
    let (s, _) = app.call(Some(&token), reqwest::Method::DELETE, &format!("/api/v1/documents/{gone_id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(files_under(&app.files), 2, "a deleted document keeps its file until purged");

    let (documents, _) = secondlook::documents::store::Documents::open(&app.settings).expect("storage");
    let purge = secondlook::documents::store::purge_deleted;
    let now = chrono::Utc::now();
    assert_eq!(purge(&app.db, &documents, now).await.expect("purge"), 0, "not before its time");
    let later = now + chrono::Duration::from_std(app.settings.documents.purge_deleted_after).expect("days");
    assert_eq!(purge(&app.db, &documents, later + chrono::Duration::minutes(1)).await.expect("purge"), 1);
    assert_eq!(document_rows(&app).await, 1, "only the deleted one went");
    assert_eq!(files_under(&app.files), 1, "with its file");
    let (s, _) = app.post(&app.admin.token, &format!("/api/v1/documents/{gone_id}/restore"), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a purged document cannot be restored");
    assert!(audit_actions(&app, case).await.iter().any(|a| a == "document.purged"));
}
