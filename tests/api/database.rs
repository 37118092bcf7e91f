//! The database layer on its own: migrations run by processes starting
//! together, and the admin figures the database computes.

use secondlook::{auth::users, db};

use crate::common::{Backend, fresh_database, test_settings};

crate::on_both_databases!(
    instances_starting_together_migrate_once,
    admin_figures_are_computed_by_the_database,
    a_stored_word_outside_the_vocabulary_is_an_error_not_a_default,
    the_tallies_agree_with_a_scan_of_every_row,
);

/// Checks that the figures kept in tallies are those a scan of every row
/// gives: counts exactly, and times in stage as the scan's exact lengths
/// rounded to the tenth of a day the page shows.
pub(crate) fn assert_same_figures(kept: &secondlook::reports::Overview, scanned: &secondlook::reports::Overview) {
    let without_times = |o: &secondlook::reports::Overview| {
        let mut value = serde_json::to_value(o).expect("figures serialise");
        for timing in value["time_in_stage"].as_array_mut().expect("timings") {
            timing["median_days"] = serde_json::Value::Null;
            timing["p90_days"] = serde_json::Value::Null;
        }
        value
    };
    assert_eq!(without_times(kept), without_times(scanned));
    for (k, s) in kept.time_in_stage.iter().zip(&scanned.time_in_stage) {
        for (kept_days, exact) in [(k.median_days, s.median_days), (k.p90_days, s.p90_days)] {
            match (kept_days, exact) {
                (Some(kept_days), Some(exact)) => assert!(
                    (kept_days - exact).abs() <= 0.05 + 1e-6,
                    "{:?}: kept {kept_days} for an exact {exact}",
                    k.stage
                ),
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "{:?}", k.stage),
            }
        }
    }
}

async fn the_tallies_agree_with_a_scan_of_every_row(backend: Backend) {
    use sea_orm::EntityTrait;
    use secondlook::{cases::tallies, reports};
    use serde_json::json;

    use crate::common::TestApp;
    let Some(app) = TestApp::start(backend).await else { return };
    let token = app.advocate.token.clone();
    let specialist = app.add_specialist("Dr. Tally", true).await;
    let decide = |chosen: &'static str| json!({ "chosen_opinion": chosen, "reason": "Talked it through" });
    for (n, chosen) in ["second", "other", "original"].into_iter().enumerate() {
        let id = app.open_case(&token, &format!("Decided {n}")).await;
        crate::workflow::to_opinions_compared(&app, &token, id, specialist).await;
        let (s, b) = app.put(&token, &format!("/api/v1/cases/{id}/decision"), decide(chosen)).await;
        assert_eq!(s, reqwest::StatusCode::OK, "{b}");
        assert_eq!(app.move_case(&token, id, json!({ "to": "decision_made" })).await.0, reqwest::StatusCode::OK);
    }
    let withdrawn = app.open_case(&token, "Withdrawn").await;
    let (s, b) = app.move_case(&token, withdrawn, json!({ "to": "withdrawn", "note": "Moved away" })).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");
    let handed_over = app.open_case(&token, "Handed Over").await;
    let moved = json!({ "to": "specialist_chosen", "specialist_id": specialist });
    assert_eq!(app.move_case(&token, handed_over, moved).await.0, reqwest::StatusCode::OK);
    let reassign = json!({ "advocate_id": app.other_advocate.id });
    let (s, b) = app.patch(&app.admin.token, &format!("/api/v1/cases/{handed_over}"), reassign).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");
    let unassigned = app.post(&app.admin.token, "/api/v1/cases", crate::common::new_case("Nobody's Yet")).await;
    assert_eq!(unassigned.0, reqwest::StatusCode::CREATED, "{}", unassigned.1);
    app.open_case(&app.other_advocate.token, "Still Waiting").await;
    // Due dates that move: a hold, a hold and resume, a faster urgency.
    let held = app.open_case(&token, "On Hold").await;
    let hold = |id: i64| format!("/api/v1/cases/{id}/hold");
    assert_eq!(app.post(&token, &hold(held), json!({ "reason": "other" })).await.0, reqwest::StatusCode::OK);
    let resumed = app.open_case(&token, "Held And Back").await;
    assert_eq!(app.post(&token, &hold(resumed), json!({ "reason": "other" })).await.0, reqwest::StatusCode::OK);
    let (s, b) = app.post(&token, &format!("/api/v1/cases/{resumed}/resume"), json!({})).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");
    let hurried = app.open_case(&token, "Hurried").await;
    let (s, b) = app.patch(&token, &format!("/api/v1/cases/{hurried}"), json!({ "urgency": "expedited" })).await;
    assert_eq!(s, reqwest::StatusCode::OK, "{b}");

    let now = chrono::Utc::now();
    let kept = reports::overview(&app.db, now).await.expect("figures from the tallies");
    let scanned = reports::full_scan::overview_by_scan(&app.db, now).await.expect("figures from every row");
    assert_same_figures(&kept, &scanned);
    // Later, the open cases fall overdue: some on an earlier day, some
    // earlier on the same day, as the clock passes each due date.
    let due_dates: Vec<chrono::DateTime<chrono::Utc>> = secondlook::db::entities::case::Entity::find()
        .all(&app.db)
        .await
        .expect("cases")
        .into_iter()
        .filter_map(|c| c.stage_due_at)
        .collect();
    assert!(due_dates.len() >= 6, "the open cases have due dates");
    let mut later: Vec<_> = due_dates.iter().map(|due| *due + chrono::Duration::seconds(1)).collect();
    later.extend([now + chrono::Duration::days(3), now + chrono::Duration::days(40)]);
    let mut overdue_seen = 0;
    for at in later {
        let kept = reports::overview(&app.db, at).await.expect("figures later");
        let scanned = reports::full_scan::overview_by_scan(&app.db, at).await.expect("scan later");
        assert_same_figures(&kept, &scanned);
        overdue_seen = overdue_seen.max(kept.overdue_per_stage.iter().map(|(_, n)| *n).sum::<i64>());
    }
    assert!(overdue_seen >= 5, "all but the held case fall overdue in time, not {overdue_seen}");
    // A database upgraded with cases in it gets its due-day tally from the rows.
    use migration::MigratorTrait;
    let since_due_tally = migration::Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name() == "m20261207_000009_tally_due")
        .expect("the due-day tally migration")
        + 1;
    // On one connection, as the server migrates: another pooled SQLite
    // connection may still see the schema as it was before the change.
    let txn = secondlook::db::begin_write(&app.db).await.expect("begin");
    migration::Migrator::down(&*txn, Some(since_due_tally as u32)).await.expect("undo the migrations since");
    txn.commit().await.expect("commit the downgrade");
    secondlook::db::migrate(&app.db).await.expect("migrate again");
    // Search words too are built for the cases already there, at start-up.
    let (_, found) = app.get(&token, "/api/v1/cases?q=held+and+back").await;
    assert!(found["items"].as_array().expect("items").is_empty(), "not built yet: {found}");
    secondlook::cases::search::ensure_built(&app.db).await.expect("build the search words");
    let (_, found) = app.get(&token, "/api/v1/cases?q=back+held").await;
    assert_eq!(found["items"][0]["id"].as_i64(), Some(resumed), "{found}");
    for at in [now, now + chrono::Duration::days(3), now + chrono::Duration::days(40)] {
        let kept = reports::overview(&app.db, at).await.expect("figures after the upgrade");
        let scanned = reports::full_scan::overview_by_scan(&app.db, at).await.expect("scan after the upgrade");
        assert_same_figures(&kept, &scanned);
    }
    assert_eq!(kept.outcomes.decided, 3);
    assert_eq!(kept.outcomes.treatment_changed, 3, "each comparison says the plans differ");
    assert_eq!(kept.outcomes.surgery_not_followed, 2, "the second opinion and another course pass on surgery");
    assert_eq!(kept.weekly.last().map(|w| (w.opened, w.closed)), Some((10, 4)));
    let loads: Vec<_> = kept.per_advocate.iter().map(|a| (a.advocate_id.map(i64::from), a.open)).collect();
    assert_eq!(
        loads,
        vec![(Some(app.advocate.id), 3), (Some(app.other_advocate.id), 2), (None, 1)],
        "the first advocate keeps the held, resumed and hurried cases"
    );

    tallies::rebuild(&app.db).await.expect("rebuild");
    let rebuilt = reports::overview(&app.db, now).await.expect("figures after a rebuild");
    assert_same_figures(&rebuilt, &scanned);

    // The admin page's kept times in stage follow a move made after they were kept.
    let timings = reports::TimingsCache::default();
    let before = reports::overview_with(&app.db, Some(&timings), now).await.expect("kept");
    assert_same_figures(&before, &scanned);
    let waiting = app.open_case(&token, "Moves Later").await;
    let moved = json!({ "to": "specialist_chosen", "specialist_id": specialist });
    assert_eq!(app.move_case(&token, waiting, moved).await.0, reqwest::StatusCode::OK);
    let now = chrono::Utc::now();
    let after = reports::overview_with(&app.db, Some(&timings), now).await.expect("kept after a move");
    let rescanned = reports::full_scan::overview_by_scan(&app.db, now).await.expect("scan after a move");
    assert_same_figures(&after, &rescanned);
    assert_eq!(after.time_in_stage[0].count, before.time_in_stage[0].count + 1);
}

async fn instances_starting_together_migrate_once(backend: Backend) {
    let Some((url, _dir)) = fresh_database(backend).await else {
        return;
    };
    let settings = test_settings(&url);
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(db::connect(&settings.database).await.expect("connect"));
    }
    let results = futures_util::future::join_all(pools.iter().map(db::migrate)).await;
    for result in results {
        result.expect("every instance's migration run succeeds");
    }
    // Each instance would now bootstrap the first admin; exactly one account results.
    let outcomes =
        futures_util::future::join_all(pools.iter().map(|pool| {
            users::bootstrap_admin(pool, "first@example.org", "First", Some("a long enough password".into()))
        }))
        .await;
    let created = outcomes.into_iter().map(|o| o.expect("bootstrap succeeds")).filter(Option::is_some).count();
    assert_eq!(created, 1);
    assert_eq!(users::count(&pools[0]).await.expect("count"), 1);
}

async fn admin_figures_are_computed_by_the_database(backend: Backend) {
    use crate::common::TestApp;
    use serde_json::json;
    let Some(app) = TestApp::start(backend).await else { return };
    let specialist = app.add_specialist("Dr. Figures", true).await;
    let now = chrono::Utc::now();
    // Three cases spent 2, 4 and 6 days gathering records; a fourth is still there, overdue.
    for (n, days) in [(0, 2), (1, 4), (2, 6)] {
        let id = app.open_case(&app.advocate.token, &format!("Figure {n}")).await;
        let moved = json!({ "to": "specialist_chosen", "specialist_id": specialist });
        assert_eq!(app.move_case(&app.advocate.token, id, moved).await.0, reqwest::StatusCode::OK);
        let entered = now - chrono::Duration::days(10);
        let left = entered + chrono::Duration::days(days);
        for (to, at) in [("records_requested", entered), ("specialist_chosen", left)] {
            app.sql(&format!(
                "UPDATE stage_history SET at = '{}' WHERE case_id = {id} AND to_stage = '{to}'",
                at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
            ))
            .await;
        }
    }
    let late = app.open_case(&app.other_advocate.token, "Late Figure").await;
    let due = (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    app.sql(&format!("UPDATE cases SET stage_due_at = '{due}' WHERE id = {late}")).await;
    // History was rewritten behind the application's back: recount.
    secondlook::cases::tallies::rebuild(&app.db).await.expect("rebuild the tallies");

    let overview = secondlook::reports::overview(&app.db, chrono::Utc::now()).await.expect("overview");
    let records = &overview.time_in_stage[0];
    assert_eq!(records.count, 3);
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 0.01);
    assert!(close(records.median_days, 4.0), "median {:?}", records.median_days);
    assert!(close(records.p90_days, 6.0), "90th percentile {:?}", records.p90_days);
    assert_eq!(overview.open_per_stage[0].1, 1, "one case still gathering records");
    assert_eq!(overview.open_per_stage[1].1, 3);
    assert_eq!(overview.overdue_per_stage[0].1, 1);
    let this_week = overview.weekly.last().expect("weeks");
    assert_eq!(this_week.opened, 4, "every case was opened this week");
    assert_eq!(overview.weekly.len(), 12);
    let late_owner = overview
        .per_advocate
        .iter()
        .find(|a| a.advocate_id.map(i64::from) == Some(app.other_advocate.id))
        .expect("row");
    assert_eq!((late_owner.open, late_owner.overdue), (1, 1));
}

async fn a_stored_word_outside_the_vocabulary_is_an_error_not_a_default(backend: Backend) {
    use crate::common::TestApp;
    use secondlook::{actor::Actor, cases::store, error::AppError};
    let Some(app) = TestApp::start(backend).await else { return };
    let id = app.open_case(&app.advocate.token, "Corrupt Word").await;
    let fine = app.open_case(&app.advocate.token, "Fine Case").await;
    for (column, word) in
        [("urgency", "urgentish"), ("stage", "limbo"), ("reason", "whim"), ("chosen_opinion", "eleventh")]
    {
        app.sql(&format!("UPDATE cases SET {column} = '{word}' WHERE id = {id}")).await;
        let read = store::view(
            &app.db,
            &app.reads,
            &Actor::system("tests"),
            secondlook::ids::CaseId(i32::try_from(id).expect("id")),
        )
        .await;
        assert!(matches!(read, Err(AppError::Database(_))), "{column} = {word} read as {read:?}");
        let (status, body) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
        assert_eq!(status, reqwest::StatusCode::INTERNAL_SERVER_ERROR, "{column}: {body}");
        assert_eq!(body["error"]["code"], "internal");
        let restore = match column {
            "urgency" => "routine",
            "stage" => "records_requested",
            "chosen_opinion" => "other",
            _ => "cancer_diagnosis",
        };
        app.sql(&format!("UPDATE cases SET {column} = '{restore}' WHERE id = {id}")).await;
    }
    let (status, _) = app.get(&app.admin.token, &format!("/api/v1/cases/{fine}")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (status, case) = app.get(&app.admin.token, &format!("/api/v1/cases/{id}")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "readable again once the word is known: {case}");
    assert_eq!(case["urgency"], "routine");
}
